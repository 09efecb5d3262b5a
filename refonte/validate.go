package refonte

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	json "github.com/goccy/go-json"
)

// ErrInvalidParams is wrapped by every *ParamError, so callers can test
// errors.Is(err, ErrInvalidParams) for any parameter problem.
var ErrInvalidParams = errors.New("refonte: invalid task params")

// ParamError reports one invalid or missing task parameter. Field is the
// parameter's name as sent on the wire (nested fields use dots, e.g.
// "geometries.box.objects_to_annotate").
type ParamError struct {
	Field  string
	Reason string
}

// Error returns "<field>: <reason>".
func (e *ParamError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidParams) true.
func (e *ParamError) Unwrap() error { return ErrInvalidParams }

func missing(field string) error {
	return &ParamError{Field: field, Reason: "is required"}
}

func invalid(field, format string, args ...any) error {
	return &ParamError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// geometryKinds are the keys accepted in imageannotation's geometries.
var geometryKinds = map[string]bool{"box": true, "polygon": true, "line": true, "point": true, "cuboid": true, "ellipse": true}

// ValidateTaskParams checks a task creation body against the API reference's
// rules for the task type: the types of the common params, http(s) URLs for
// attachments and callback_url, and the type-specific required params. The
// sandbox answers 400 with the returned message, and enqueue rejects a row
// with it, so both agree on what is valid. Project default params must be
// merged into params before the call. The error is a *ParamError naming the
// first offending field, or wraps ErrUnknownTaskType.
func ValidateTaskParams(typ TaskType, params TaskParams) error {
	if _, err := ParseTaskType(string(typ)); err != nil {
		return err
	}
	if err := validateCommon(params); err != nil {
		return err
	}
	switch typ {
	case TypeImageAnnotation:
		if err := requireAttachment(params); err != nil {
			return err
		}
		return validateGeometries(params["geometries"])
	case TypeCategorization:
		if err := requireAttachment(params); err != nil {
			return err
		}
		if _, ok := params["categories"]; ok {
			return nonEmptyStrings(params, "categories")
		}
		if tx, ok := params["taxonomies"]; ok {
			if m, ok := tx.(map[string]any); !ok || len(m) == 0 {
				return invalid("taxonomies", "must be a non-empty object")
			}
			return nil
		}
		return &ParamError{Field: "categories", Reason: "is required (or taxonomies)"}
	case TypeTextCollection:
		if _, ok := params[ParamAttachments]; !ok {
			return missing(ParamAttachments)
		}
		return nonEmptyArray(params, "fields")
	case TypeDocumentTranscription:
		return requireAttachment(params)
	case TypeSegmentAnnotation:
		if err := requireAttachment(params); err != nil {
			return err
		}
		return nonEmptyArray(params, "labels")
	case TypeNamedEntityRecognition:
		text, ok := params["text"]
		if !ok {
			return missing("text")
		}
		if s, ok := text.(string); !ok || strings.TrimSpace(s) == "" {
			return invalid("text", "must be a non-empty string")
		}
		return nonEmptyArray(params, "labels")
	default:
		_, one := params[ParamAttachment]
		_, many := params[ParamAttachments]
		if !one && !many {
			return &ParamError{Field: ParamAttachment, Reason: "is required (or attachments)"}
		}
		return nil
	}
}

func validateCommon(p TaskParams) error {
	for _, name := range []string{ParamProject, ParamBatch, ParamInstruction, ParamAttachmentType, ParamUniqueID} {
		if v, ok := p[name]; ok {
			if _, isString := v.(string); !isString {
				return invalid(name, "must be a string")
			}
		}
	}
	if v, ok := p[ParamCallbackURL]; ok {
		s, isString := v.(string)
		if !isString {
			return invalid(ParamCallbackURL, "must be a string")
		}
		if err := checkURL(ParamCallbackURL, s); err != nil {
			return err
		}
	}
	textual := p.String(ParamAttachmentType) == "text"
	if v, ok := p[ParamAttachment]; ok {
		s, isString := v.(string)
		switch {
		case !isString:
			return invalid(ParamAttachment, "must be a string")
		case strings.TrimSpace(s) == "":
			return invalid(ParamAttachment, "must not be empty")
		case !textual:
			if err := checkURL(ParamAttachment, s); err != nil {
				return err
			}
		}
	}
	if v, ok := p[ParamAttachments]; ok {
		arr, isArray := v.([]any)
		if !isArray || len(arr) == 0 {
			return invalid(ParamAttachments, "must be a non-empty array")
		}
		for i, a := range arr {
			field := fmt.Sprintf("%s[%d]", ParamAttachments, i)
			switch a := a.(type) {
			case string:
				if !textual {
					if err := checkURL(field, a); err != nil {
						return err
					}
				}
			case map[string]any:
			default:
				return invalid(field, "must be a URL string or an object")
			}
		}
	}
	if v, ok := p[ParamMetadata]; ok {
		if _, isObject := v.(map[string]any); !isObject {
			return invalid(ParamMetadata, "must be a JSON object")
		}
	}
	if v, ok := p[ParamTags]; ok {
		arr, isArray := v.([]any)
		if !isArray {
			return invalid(ParamTags, "must be an array of strings")
		}
		for _, t := range arr {
			if _, isString := t.(string); !isString {
				return invalid(ParamTags, "must be an array of strings")
			}
		}
	}
	if v, ok := p[ParamPriority]; ok {
		switch n := v.(type) {
		case float64:
			if n != float64(int64(n)) {
				return invalid(ParamPriority, "must be an integer")
			}
		case json.Number:
			if _, err := n.Int64(); err != nil {
				return invalid(ParamPriority, "must be an integer")
			}
		default:
			return invalid(ParamPriority, "must be an integer")
		}
	}
	if v, ok := p[ParamClearUniqueIDOnError]; ok {
		if _, isBool := v.(bool); !isBool {
			return invalid(ParamClearUniqueIDOnError, "must be a boolean")
		}
	}
	return nil
}

func requireAttachment(p TaskParams) error {
	if _, ok := p[ParamAttachment]; !ok {
		return missing(ParamAttachment)
	}
	return nil
}

func checkURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(field, "must be an http(s) URL, got %q", truncate(s, 80))
	}
	return nil
}

func nonEmptyArray(p TaskParams, field string) error {
	v, ok := p[field]
	if !ok {
		return missing(field)
	}
	if arr, isArray := v.([]any); !isArray || len(arr) == 0 {
		return invalid(field, "must be a non-empty array")
	}
	return nil
}

func nonEmptyStrings(p TaskParams, field string) error {
	if err := nonEmptyArray(p, field); err != nil {
		return err
	}
	for i, v := range p[field].([]any) {
		if s, ok := v.(string); !ok || s == "" {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be a non-empty string")
		}
	}
	return nil
}

func validateGeometries(v any) error {
	if v == nil {
		return missing("geometries")
	}
	g, ok := v.(map[string]any)
	if !ok || len(g) == 0 {
		return invalid("geometries", "must be a non-empty object with keys among box, polygon, line, point, cuboid, ellipse")
	}
	kinds := make([]string, 0, len(g))
	for k := range g {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if !geometryKinds[k] {
			return invalid("geometries."+k, "unknown geometry (want one of box, polygon, line, point, cuboid, ellipse)")
		}
		spec, ok := g[k].(map[string]any)
		if !ok {
			return invalid("geometries."+k, "must be an object")
		}
		objs, ok := spec["objects_to_annotate"].([]any)
		if !ok || len(objs) == 0 {
			return invalid("geometries."+k+".objects_to_annotate", "must be a non-empty array")
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
