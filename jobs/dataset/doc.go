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
// or a dotted nested one, which stays where it is), a non-empty string or an
// integral JSON number of at most 255 bytes, replacing any unique_id the row
// has; else the row's own "unique_id" column or field, a non-empty string of
// at most 255 bytes used as is; else UniqueID's hash of the project, the type
// and the canonical params, so that re-reading the same dataset gives the
// same IDs.
//
// # Rejects
//
// A row that cannot be mapped or fails refonte.ValidateTaskParams is returned
// as a *Reject: its first line, an error naming the field and the reason
// (without a "line N:" prefix; Reject.String adds one), and the raw record
// text; reading continues. Lines or records longer than
// Options.MaxLineBytes are rejected the same way and reading resumes at the
// next physical line. Only I/O errors, gzip corruption, a UTF-16 file, an
// unusable CSV header and a file that is not a dataset (ErrNotDataset: none
// of its first MaxLeadingUndecodable records decodes) stop reading.
//
// testdata/malformed holds a corpus of broken datasets with the expected
// rejects (see its README.md).
package dataset
