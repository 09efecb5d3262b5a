package refonte

import (
	"errors"
	"fmt"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// Mode is the API mode of a key: test or live. The two modes are separate
// worlds; a resource created in one does not exist in the other.
type Mode string

const (
	// ModeTest is the mode of keys starting with "test_": free, synthetic responses.
	ModeTest Mode = "test"
	// ModeLive is the mode of keys starting with "live_": worked by humans and billed.
	ModeLive Mode = "live"
)

// ErrInvalidKey reports an API key that is empty or lacks a "test_"/"live_" prefix.
var ErrInvalidKey = errors.New("refonte: invalid API key")

// ModeOf returns the mode of an API key from its prefix. It fails with an
// error wrapping ErrInvalidKey for an empty key or one without a "test_" or
// "live_" prefix; the error never contains the key.
func ModeOf(apiKey string) (Mode, error) {
	switch {
	case apiKey == "":
		return "", fmt.Errorf("%w: the key is empty", ErrInvalidKey)
	case strings.HasPrefix(apiKey, "test_") && len(apiKey) > len("test_"):
		return ModeTest, nil
	case strings.HasPrefix(apiKey, "live_") && len(apiKey) > len("live_"):
		return ModeLive, nil
	default:
		return "", fmt.Errorf("%w: the key must start with \"test_\" or \"live_\"", ErrInvalidKey)
	}
}

// ParseMode parses "test" or "live".
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeTest, ModeLive:
		return Mode(s), nil
	}
	return "", fmt.Errorf("refonte: unknown mode %q (want \"test\" or \"live\")", s)
}

// String returns "test" or "live".
func (m Mode) String() string { return string(m) }

// TaskType is a task type, the lower-case path segment of POST /task/{type}.
type TaskType string

// The task types of the API reference.
const (
	TypeImageAnnotation         TaskType = "imageannotation"
	TypeCategorization          TaskType = "categorization"
	TypeTextCollection          TaskType = "textcollection"
	TypeDocumentTranscription   TaskType = "documenttranscription"
	TypeDocumentModel           TaskType = "documentmodel"
	TypeSegmentAnnotation       TaskType = "segmentannotation"
	TypePolygonAnnotation       TaskType = "polygonannotation"
	TypeLineAnnotation          TaskType = "lineannotation"
	TypePointAnnotation         TaskType = "pointannotation"
	TypeCuboidAnnotation        TaskType = "cuboidannotation"
	TypeNamedEntityRecognition  TaskType = "namedentityrecognition"
	TypeComparison              TaskType = "comparison"
	TypeVideoAnnotation         TaskType = "videoannotation"
	TypeVideoPlaybackAnnotation TaskType = "videoplaybackannotation"
	TypeVideoBoxAnnotation      TaskType = "videoboxannotation"
	TypeLidarAnnotation         TaskType = "lidarannotation"
	TypeLidarSegmentation       TaskType = "lidarsegmentation"
	TypeLidarTopDown            TaskType = "lidartopdown"
	TypeTranscription           TaskType = "transcription"
	TypeDataCollection          TaskType = "datacollection"
	TypeAnnotation              TaskType = "annotation"
)

// TaskTypes returns every task type the API accepts, in the reference's order.
func TaskTypes() []TaskType {
	return []TaskType{
		TypeImageAnnotation, TypeCategorization, TypeTextCollection, TypeDocumentTranscription,
		TypeDocumentModel, TypeSegmentAnnotation, TypePolygonAnnotation, TypeLineAnnotation,
		TypePointAnnotation, TypeCuboidAnnotation, TypeNamedEntityRecognition, TypeComparison,
		TypeVideoAnnotation, TypeVideoPlaybackAnnotation, TypeVideoBoxAnnotation, TypeLidarAnnotation,
		TypeLidarSegmentation, TypeLidarTopDown, TypeTranscription, TypeDataCollection, TypeAnnotation,
	}
}

// ErrUnknownTaskType reports a task type the API does not know.
var ErrUnknownTaskType = errors.New("refonte: unknown task type")

// ParseTaskType returns the TaskType named s (case-insensitive), or an error
// wrapping ErrUnknownTaskType.
func ParseTaskType(s string) (TaskType, error) {
	t := TaskType(strings.ToLower(strings.TrimSpace(s)))
	for _, known := range TaskTypes() {
		if t == known {
			return t, nil
		}
	}
	return "", fmt.Errorf("%w %q", ErrUnknownTaskType, s)
}

// TaskStatus is the status of a task.
type TaskStatus string

// Task statuses.
const (
	StatusPending   TaskStatus = "pending"
	StatusCompleted TaskStatus = "completed"
	StatusCanceled  TaskStatus = "canceled"
	StatusError     TaskStatus = "error"
)

// Terminal reports whether the status is final (completed, canceled or error).
func (s TaskStatus) Terminal() bool {
	return s == StatusCompleted || s == StatusCanceled || s == StatusError
}

// Task is the task object returned by task creation, GET /task/{id}, lists
// and callbacks.
type Task struct {
	ID                string          `json:"task_id"`
	Type              TaskType        `json:"type"`
	Status            TaskStatus      `json:"status"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
	CompletedAt       *time.Time      `json:"completed_at"`
	Project           string          `json:"project,omitempty"`
	Batch             string          `json:"batch,omitempty"`
	CallbackURL       string          `json:"callback_url,omitempty"`
	CallbackSucceeded *bool           `json:"callback_succeeded"`
	Instruction       string          `json:"instruction,omitempty"`
	Params            json.RawMessage `json:"params,omitempty"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	UniqueID          string          `json:"unique_id,omitempty"`
	Tags              []string        `json:"tags"`
	IsTest            bool            `json:"is_test"`
	Response          json.RawMessage `json:"response"`
}

// TaskParams is the JSON body of a task creation: the common params of the
// reference (project, batch, callback_url, instruction, attachment,
// attachment_type, attachments, metadata, unique_id,
// clear_unique_id_on_error, priority, tags) and the type-specific ones
// (geometries, categories, fields, labels, text, …) side by side at the top
// level, exactly as sent on the wire.
type TaskParams map[string]any

// Common parameter names of a task creation body.
const (
	ParamProject              = "project"
	ParamBatch                = "batch"
	ParamCallbackURL          = "callback_url"
	ParamInstruction          = "instruction"
	ParamAttachment           = "attachment"
	ParamAttachmentType       = "attachment_type"
	ParamAttachments          = "attachments"
	ParamMetadata             = "metadata"
	ParamUniqueID             = "unique_id"
	ParamClearUniqueIDOnError = "clear_unique_id_on_error"
	ParamPriority             = "priority"
	ParamTags                 = "tags"
)

// String returns the value of a string parameter, or "" when it is absent
// or not a string.
func (p TaskParams) String(name string) string {
	s, _ := p[name].(string)
	return s
}
