package store

import (
	"strconv"
	"testing"
)

// TestConsoleLuaBounds: the Lua scripts spell the console's bounds as
// strings; they must agree with the Go constants.
func TestConsoleLuaBounds(t *testing.T) {
	if failureGroupBytesLua != strconv.Itoa(FailureGroupBytes) || maxFailureGroupsLua != strconv.Itoa(MaxFailureGroups) {
		t.Errorf("Lua bounds %s/%s differ from %d/%d", failureGroupBytesLua, maxFailureGroupsLua, FailureGroupBytes, MaxFailureGroups)
	}
}
