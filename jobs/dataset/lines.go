package dataset

import (
	"bufio"
	"bytes"
	"io"
)

// lineReader yields physical lines of at most max bytes (terminator
// excluded) with flat memory: a longer line is skipped up to its newline and
// reported as too long with its first RawLimit bytes.
type lineReader struct {
	br   *bufio.Reader
	max  int
	long []byte // a line that did not fit bufio's buffer
	n    int64  // physical lines consumed so far
}

// next returns the next line without "\n" or "\r\n", valid until the next
// call, and whether it was too long (then only its start is returned). It
// returns io.EOF after the last line, or the underlying read error.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	s, err := lr.br.ReadSlice('\n')
	switch {
	case err == nil:
		lr.n++
		return lr.fit(trimEOL(s))
	case err == io.EOF:
		if len(s) == 0 {
			return nil, false, io.EOF
		}
		lr.n++
		return lr.fit(trimEOL(s))
	case err != bufio.ErrBufferFull:
		return nil, false, err
	}
	lr.long = append(lr.long[:0], s...)
	for {
		s, err = lr.br.ReadSlice('\n')
		if !tooLong {
			if len(lr.long)+len(s) > lr.max+2 {
				tooLong = true
				if len(lr.long) > RawLimit {
					lr.long = lr.long[:RawLimit]
				}
			} else {
				lr.long = append(lr.long, s...)
			}
		}
		if err == nil || err == io.EOF {
			break
		}
		if err != bufio.ErrBufferFull {
			return nil, false, err
		}
	}
	lr.n++
	if tooLong {
		return lr.long, true, nil
	}
	return lr.fit(trimEOL(lr.long))
}

func (lr *lineReader) fit(line []byte) ([]byte, bool, error) {
	if len(line) > lr.max {
		return line[:min(len(line), RawLimit)], true, nil
	}
	return line, false, nil
}

func trimEOL(s []byte) []byte {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		s = s[:n-1]
	}
	if n := len(s); n > 0 && s[n-1] == '\r' {
		s = s[:n-1]
	}
	return s
}

func isBlank(s []byte) bool {
	return len(bytes.TrimSpace(s)) == 0
}
