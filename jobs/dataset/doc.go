// Package dataset reads a labeling dataset (CSV or JSONL, optionally
// gzip-compressed) as a stream of task creation bodies, one per row, with
// flat memory: it never holds more than the current record.
//
// # Rows to task params
//
// A CSV header names the params. Dotted names nest ("metadata.source" gives
// {"metadata":{"source":…}}); a ":json" suffix parses the cell as JSON
// ("geometries:json"); empty cells are omitted. The cells of the columns
// "priority" and "clear_unique_id_on_error" are parsed as an integer and a
// boolean, every other plain cell is a string. A JSONL line is one JSON
// object of params. Blank lines are skipped; a UTF-8 byte order mark and CRLF
// line ends are accepted; quoted CSV fields may span lines.
//
// Each row then gets, in order of precedence: its own values, the
// Options.Project/Batch/CallbackURL/Instruction values, and
// Options.DefaultParams (nested objects such as metadata are merged one level
// deep, the row's keys winning). Without Options.TaskType each row names its
// type in a "type" column or field, which is removed from the params.
//
// # unique_id
//
// A row's unique_id is, in order: the value of Options.IDColumn (a top-level
// column or field, which is moved into unique_id and removed from the params,
// or a dotted nested one, which stays where it is); else the row's own
// "unique_id" column or field, used as is; else UniqueID's hash of the
// project, the type and the canonical params. Explicit IDs must be non-empty
// strings (or integral JSON numbers) of at most 255 bytes.
//
// # Rejects
//
// A row that cannot be mapped or fails refonte.ValidateTaskParams is returned
// as a *Reject naming its first line, the field and the reason, plus the raw
// record text; reading continues. Only I/O errors, gzip corruption and an
// unusable CSV header stop reading.
package dataset
