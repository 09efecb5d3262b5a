package enqueue

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Exit codes of the command line.
const (
	// ExitOK: every row valid and enqueued (with -wait: every row completed).
	ExitOK = 0
	// ExitError: an error stopped the run; the message says how far it got.
	ExitError = 1
	// ExitUsage: a usage or configuration error; nothing was written.
	ExitUsage = 2
	// ExitIncomplete: the run finished but some rows were invalid or failed.
	ExitIncomplete = 3
)

// Defaults of Config.
const (
	DefaultRedisURL  = "redis://127.0.0.1:6379/0"
	DefaultRetention = store.DefaultRetention
	// DefaultWorkers is the number of goroutines writing batches to Redis.
	DefaultWorkers = 2
	// DefaultBatchSize is the number of rows per store.AddJobs call.
	DefaultBatchSize = 256
	// StdinRejects is the default rejects file when the dataset is stdin.
	StdinRejects = stdinName + defaultRejectsE
	// stdinName stands for the dataset's file name in output names when the
	// dataset is stdin.
	stdinName = "stdin"
)

// Environment variables read by the command line.
const (
	EnvRedisURL     = "REDIS_URL"
	EnvCallbackURL  = "REFONTE_CALLBACK_URL"
	EnvLiveKey      = "REFONTE_LIVE_API_KEY"
	EnvLiveKeyFile  = "REFONTE_LIVE_API_KEY_FILE"
	defaultRejectsE = ".rejects.jsonl"
)

// ErrUsage marks usage and configuration errors (exit code ExitUsage).
var ErrUsage = errors.New("usage error")

// UsageError is a usage or configuration error; it matches ErrUsage.
type UsageError struct{ Msg string }

// Error returns the message.
func (e *UsageError) Error() string { return e.Msg }

// Unwrap returns ErrUsage.
func (e *UsageError) Unwrap() error { return ErrUsage }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Config is the configuration of a submit, from the command line's flags
// and environment (see ParseSubmit).
type Config struct {
	// Dataset is the dataset: a file path, "-" for stdin, or a URL (see
	// package datasrc). A URL may carry credentials: it is never shown as
	// is (runs record, and messages name, its redacted form).
	Dataset string
	// TaskType is the type of every row; "" means each row names its type.
	TaskType    refonte.TaskType
	Project     string
	Batch       string
	Mode        refonte.Mode
	CallbackURL string
	Instruction string
	// ParamsFile holds a JSON object of default params; DefaultParams is its content.
	ParamsFile    string
	DefaultParams map[string]any
	IDColumn      string
	Format        dataset.Format
	// Rejects is the rejects file (JSON lines): -rejects, else NAME.rejects.jsonl
	// in the output folder (see OutDir).
	Rejects string
	// OutDir is the folder of the rejects file (unless Rejects was given)
	// and of the -dev results file. Empty: beside the dataset when its
	// folder is writable, else (and for stdin) the current directory.
	OutDir string
	// Results is the -dev results file, NAME.results.jsonl in the output folder.
	Results string
	// rejectsSet says Rejects came from -rejects; outputsResolved that the
	// output locations were checked (see resolveOutputs).
	rejectsSet, outputsResolved bool
	DryRun                      bool
	Wait                        bool
	JSON                        bool
	RedisURL                    string
	Retention                   time.Duration
	// Yes confirms a live run without the terminal prompt.
	Yes bool
	// MaxLiveTasks refuses a live run with more valid rows (0: no cap).
	MaxLiveTasks int64
	// Dev runs the quick start: the whole system in this process on
	// embedded defaults (see Env.StartDev); implies Wait.
	Dev bool
	// Version asks for the build's version line only (-version); nothing
	// else is checked.
	Version bool
	// Workers is the number of concurrent store.AddJobs calls (default DefaultWorkers).
	Workers int
	// BatchSize is the number of rows per store.AddJobs call (default DefaultBatchSize).
	BatchSize int
	// MaxTaskBytes is the largest encoded task body of a row (bigger rows
	// are rejected by line); 0 means dataset.DefaultMaxBodyBytes. It also
	// caps the payload bytes of a write batch.
	MaxTaskBytes int
	// Heartbeat is how often the run records that its producer is alive
	// (default DefaultHeartbeat; see HeartbeatLapses).
	Heartbeat time.Duration
	// Priority is the run's submit priority (-priority, default normal):
	// the queue its rows wait in (see jobs.Priority).
	Priority jobs.Priority
}

// DatasetOptions returns the dataset reader options of the config.
func (c *Config) DatasetOptions() dataset.Options {
	return dataset.Options{
		Format:        c.Format,
		TaskType:      c.TaskType,
		Project:       c.Project,
		Batch:         c.Batch,
		CallbackURL:   c.CallbackURL,
		Instruction:   c.Instruction,
		DefaultParams: c.DefaultParams,
		IDColumn:      c.IDColumn,
		MaxBodyBytes:  c.maxTaskBytes(),
	}
}

// ReadSpec returns what the run records of how its dataset is read (see
// store.ReadSpec), so that enqueue results -join reads the same rows again.
func (c *Config) ReadSpec() *store.ReadSpec {
	spec := &store.ReadSpec{Format: string(c.Format), IDColumn: c.IDColumn, Instruction: c.Instruction}
	if len(c.DefaultParams) > 0 {
		// A map decoded from JSON always encodes.
		spec.Params, _ = json.Marshal(c.DefaultParams)
	}
	return spec
}

// maxTaskBytes is MaxTaskBytes or its default.
func (c *Config) maxTaskBytes() int {
	if c.MaxTaskBytes <= 0 {
		return dataset.DefaultMaxBodyBytes
	}
	return c.MaxTaskBytes
}

// SubmitUsage is the usage text of the submit command.
const SubmitUsage = `usage:
  enqueue [flags] DATASET        submit a dataset: .csv, .jsonl (.gz accepted), - (stdin, needs -format),
                                 or a URL: https://…, s3://BUCKET/KEY, gs://BUCKET/KEY, azblob://CONTAINER/KEY
                                 (-priority high|normal|low: which runs' rows are submitted first)
  enqueue status [-json] RUN_ID  a run's counts and state
  enqueue results [-format jsonl|csv] [-join] [-dataset FILE|URL] RUN_ID
                                 one line per valid row: line, unique_id, state, task_id, response, error
                                 (-join: with the row's own fields, read again from the dataset)
  enqueue retry [-dataset FILE|URL] RUN_ID  re-queue the run's failed rows, and a canceled run's canceled ones (payloads from asynq, else the dataset)
  enqueue runs [-json] [-limit N] recent runs, newest first
  enqueue cancel [-tasks] [-json] RUN_ID  stop a run (-tasks: cancel its created tasks at the API too)
  enqueue pause RUN_ID           hold a run: no new task is created for it
  enqueue resume RUN_ID          let a paused run go on

exit codes: 0 all rows valid and enqueued (with -wait: all completed); 1 an error stopped the run;
2 usage or configuration error; 3 finished but some rows invalid or failed.

environment: REDIS_URL (default for -redis), REFONTE_CALLBACK_URL (default for -callback-url),
REFONTE_LIVE_API_KEY or REFONTE_LIVE_API_KEY_FILE (-mode live refuses to start without one; enqueue only checks it).
`

// parseInterleaved parses flags that may come before and after positional
// arguments (Go's flag package stops at the first non-flag) and returns the
// positional arguments. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse consumed a "--" terminator if the previous arg was one.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ParseSubmit parses the submit command's arguments (everything after the
// program name) into a Config, reading REFONTE_CALLBACK_URL and REDIS_URL
// through getenv when the flags are not given. Errors match ErrUsage (or
// flag.ErrHelp for -h); usage text goes to out.
func ParseSubmit(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := &Config{Workers: DefaultWorkers, BatchSize: DefaultBatchSize}
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, SubmitUsage+"\nsubmit flags:\n")
		fs.PrintDefaults()
	}
	var typ, mode, priority, format string
	fs.StringVar(&typ, "type", "", "task `type` of every row (else a `type` column/field per row)")
	fs.StringVar(&c.Project, "project", "", "Refonte project of the tasks (unless the row sets one)")
	fs.StringVar(&c.Batch, "batch", "", "Refonte batch of the tasks (unless the row sets one)")
	fs.StringVar(&mode, "mode", string(refonte.ModeTest), "`test` or live (live is billable: see -yes, -max-live-tasks)")
	fs.StringVar(&priority, "priority", string(jobs.PriorityNormal), "`high`, normal or low: high runs' rows are submitted before the normal and low rows already\nqueued (same mode), first in first out within a priority; low rows still get a share")
	fs.StringVar(&c.CallbackURL, "callback-url", "", "callback URL of the tasks (default $"+EnvCallbackURL+")")
	fs.StringVar(&c.Instruction, "instruction", "", "instruction of the tasks (unless the row sets one)")
	fs.StringVar(&c.ParamsFile, "params", "", "`FILE` holding a JSON object of default params under every row")
	fs.StringVar(&c.IDColumn, "id-column", "", "column/field `NAME` whose value is the row's unique_id (default: a hash of project, type and params)")
	fs.StringVar(&format, "format", "", "csv or jsonl (default from the extension; required for stdin)")
	fs.StringVar(&c.Rejects, "rejects", "", "rejects `FILE`, JSON lines {line, error, raw} (default NAME.rejects.jsonl in the output folder, see -out-dir)")
	fs.StringVar(&c.OutDir, "out-dir", "", "`DIR` (created if missing) for the rejects file and -dev's results file, named after the dataset\n"+
		"(NAME.rejects.jsonl, NAME.results.jsonl; NAME is stdin for stdin). Default: the dataset's folder when it is\n"+
		"writable, else (and for stdin) the current directory. Checked before anything is enqueued (exit 2)")
	fs.BoolVar(&c.DryRun, "dry-run", false, "validate and count only; write the rejects file; touch no Redis key")
	fs.BoolVar(&c.Wait, "wait", false, "block until every row is terminal")
	fs.BoolVar(&c.JSON, "json", false, "print a JSON summary as the last stdout line")
	fs.StringVar(&c.RedisURL, "redis", "", "Redis `URL` (default $"+EnvRedisURL+", else "+DefaultRedisURL+")")
	fs.DurationVar(&c.Retention, "retention", DefaultRetention, "how long run and job records are kept")
	fs.BoolVar(&c.Yes, "yes", false, "confirm a live run without the terminal prompt")
	fs.Int64Var(&c.MaxLiveTasks, "max-live-tasks", 0, "refuse a live run with more than `N` valid rows (0: no cap)")
	fs.BoolVar(&c.Dev, "dev", false, "quick start: run Redis, the API sandbox (test mode) and a worker in this process, submit, wait\nfor every callback, print a summary and write NAME.results.jsonl (see -out-dir; implies -wait; ignores -redis)")
	fs.IntVar(&c.Workers, "workers", DefaultWorkers, "concurrent Redis writers")
	fs.IntVar(&c.BatchSize, "write-batch", DefaultBatchSize, "rows per Redis write batch")
	fs.IntVar(&c.MaxTaskBytes, "max-task-bytes", dataset.DefaultMaxBodyBytes, "largest encoded task body of a row, in `bytes`; bigger rows are rejected by line (also caps\nthe payload bytes of a write batch, so memory stays flat with wide rows)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", DefaultHeartbeat, "how often the run records that enqueue is alive; after 6 missed beats status and runs\nshow the run aborted (producer stopped at line N)")
	fs.BoolVar(&c.Version, "version", false, "print the version, VCS revision and Go version, and exit")

	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &UsageError{Msg: err.Error()}
	}
	if c.Version {
		return c, nil
	}
	switch len(pos) {
	case 0:
		return nil, usagef("missing DATASET (a .csv, .jsonl or - for stdin); see enqueue -h")
	case 1:
		c.Dataset = pos[0]
	default:
		return nil, usagef("one DATASET expected, got %d: %s", len(pos), strings.Join(pos, " "))
	}
	ds, err := datasrc.Parse(c.Dataset)
	if err != nil {
		return nil, usagef("%v; nothing was written", err)
	}
	if c.Mode, err = refonte.ParseMode(mode); err != nil {
		return nil, usagef("-mode %q: want test or live", mode)
	}
	if c.Priority, err = jobs.ParsePriority(priority); err != nil || priority == "" {
		return nil, usagef("-priority %q: want high, normal or low", priority)
	}
	if typ != "" {
		if c.TaskType, err = refonte.ParseTaskType(typ); err != nil {
			return nil, usagef("-type %q: %v", typ, err)
		}
	}
	if format != "" {
		if c.Format, err = dataset.ParseFormat(format); err != nil {
			return nil, usagef("-format %q: want csv or jsonl", format)
		}
	} else if c.Dataset == "-" {
		return nil, usagef("reading stdin needs -format csv or -format jsonl")
	} else if c.Format, err = dataset.DetectFormat(ds.Path); err != nil {
		return nil, usagef("%v", err) // the reader's message says to use -format
	}
	if c.CallbackURL == "" {
		c.CallbackURL = getenv(EnvCallbackURL)
	}
	if c.CallbackURL != "" {
		if u, err := url.Parse(c.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("callback URL %q: want an http(s) URL", c.CallbackURL)
		}
	}
	if c.RedisURL == "" {
		c.RedisURL = getenv(EnvRedisURL)
	}
	if c.RedisURL == "" {
		c.RedisURL = DefaultRedisURL
	}
	if c.Retention <= 0 {
		return nil, usagef("-retention %v: must be positive", c.Retention)
	}
	if c.MaxLiveTasks < 0 {
		return nil, usagef("-max-live-tasks %d: must be 0 (no cap) or positive", c.MaxLiveTasks)
	}
	if c.MaxTaskBytes < 1024 {
		return nil, usagef("-max-task-bytes %d: must be at least 1024", c.MaxTaskBytes)
	}
	if c.Heartbeat <= 0 {
		return nil, usagef("-heartbeat %v: must be positive", c.Heartbeat)
	}
	if c.Workers < 1 || c.BatchSize < 1 {
		return nil, usagef("-workers and -write-batch must be at least 1")
	}
	if c.DryRun && c.Wait {
		return nil, usagef("-dry-run and -wait cannot be combined")
	}
	// The nominal output paths; resolveOutputs checks them (and falls back
	// to the current directory) before a submit writes anything.
	name, dir := ds.Base, cmp.Or(ds.Dir(), ".")
	if c.OutDir != "" {
		dir = c.OutDir
	}
	c.rejectsSet = c.Rejects != ""
	if !c.rejectsSet {
		c.Rejects = filepath.Join(dir, name+defaultRejectsE)
	}
	c.Results = filepath.Join(dir, name+defaultResultsE)
	if c.ParamsFile != "" {
		if c.DefaultParams, err = readParams(c.ParamsFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// readParams reads a -params file: a JSON object.
func readParams(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("-params: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, usagef("-params %s: want a JSON object (%v)", path, err)
	}
	return m, nil
}

// opsConfig is the configuration of the status, results, retry, runs,
// cancel, pause and resume commands.
type opsConfig struct {
	RedisURL string
	JSON     bool
	Limit    int
	RunID    string
	// Tasks is cancel's -tasks: cancel created tasks at the API too.
	Tasks bool
	// Join and ResultsFormat are results' -join and -format.
	Join          bool
	ResultsFormat ResultsFormat
	// Dataset is retry's dataset fallback, or the dataset results -join reads.
	Dataset        string
	DatasetOptions dataset.Options
}

// parseOps parses the arguments of an operator command (after its name).
func parseOps(name string, args []string, getenv func(string) string, out io.Writer) (*opsConfig, error) {
	c := &opsConfig{}
	fs := flag.NewFlagSet("enqueue "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.RedisURL, "redis", "", "Redis `URL` (default $"+EnvRedisURL+", else "+DefaultRedisURL+")")
	needRun := name != "runs"
	if name == "status" || name == "runs" || name == "cancel" {
		fs.BoolVar(&c.JSON, "json", false, "print JSON")
	}
	if name == "cancel" {
		fs.BoolVar(&c.Tasks, "tasks", false, "also cancel at the API (by the workers, under the rate limit) the tasks already created and not finished")
	}
	if name == "runs" {
		fs.IntVar(&c.Limit, "limit", 20, "how many runs")
	}
	var format, paramsFile string
	resultsFormat := string(ResultsJSONL)
	if name == "results" {
		fs.StringVar(&resultsFormat, "format", resultsFormat, "output `format`: jsonl or csv (RFC 4180, formula-safe cells)")
		fs.BoolVar(&c.Join, "join", false, "each valid row's own fields next to its outcome, read again from the dataset")
		fs.StringVar(&c.Dataset, "dataset", "", "dataset `FILE|URL` -join reads (default: the run's dataset; - for stdin)")
	}
	if name == "retry" {
		fs.StringVar(&c.Dataset, "dataset", "", "dataset `FILE|URL` to rebuild payloads asynq no longer holds (default: the run's dataset; - for stdin)")
		fs.StringVar(&format, "format", "", "csv or jsonl (default from the extension)")
		fs.StringVar(&paramsFile, "params", "", "the submit's -params `FILE`")
		fs.StringVar(&c.DatasetOptions.Instruction, "instruction", "", "the submit's -instruction")
		fs.StringVar(&c.DatasetOptions.IDColumn, "id-column", "", "the submit's -id-column")
	}
	fs.Usage = func() {
		if needRun {
			fmt.Fprintf(out, "usage: enqueue %s [flags] RUN_ID\n", name)
		} else {
			fmt.Fprintf(out, "usage: enqueue %s [flags]\n", name)
		}
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &UsageError{Msg: err.Error()}
	}
	switch {
	case needRun && len(pos) != 1:
		return nil, usagef("usage: enqueue %s RUN_ID", name)
	case needRun:
		c.RunID = pos[0]
	case len(pos) != 0:
		return nil, usagef("usage: enqueue %s takes no arguments", name)
	}
	if c.Limit < 0 {
		return nil, usagef("-limit must not be negative")
	}
	if name == "results" {
		if c.ResultsFormat, err = ParseResultsFormat(resultsFormat); err != nil {
			return nil, err
		}
		if c.Dataset != "" && !c.Join {
			return nil, usagef("-dataset is read by -join only")
		}
	}
	if format != "" {
		if c.DatasetOptions.Format, err = dataset.ParseFormat(format); err != nil {
			return nil, usagef("-format %q: want csv or jsonl", format)
		}
	} else if c.Dataset == "-" && name == "retry" {
		return nil, usagef("-dataset - (stdin) needs -format")
	}
	if paramsFile != "" {
		if c.DatasetOptions.DefaultParams, err = readParams(paramsFile); err != nil {
			return nil, err
		}
	}
	if c.RedisURL == "" {
		c.RedisURL = getenv(EnvRedisURL)
	}
	if c.RedisURL == "" {
		c.RedisURL = DefaultRedisURL
	}
	return c, nil
}
