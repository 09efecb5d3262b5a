package sandbox

import (
	"sync/atomic"

	"github.com/refonte-ai/refonte-batch/refonte"
)

type counters struct {
	apiCalls, createCalls, tasksCreated, duplicateUID, createdTwice, uidReused atomic.Int64
	rateLimited, errorsInjected, lostResponses, downRejected                   atomic.Int64
	callbacksOK, callbacksFailed, callbacksSent, callbackAttemptsFailed        atomic.Int64
	callbacksDropped, callbacksDuplicated, callbacksEarly                      atomic.Int64
}

// Stats are the sandbox's counters, served by GET /_sandbox/stats.
type Stats struct {
	// CreateCalls counts authenticated POST /task/{type} calls, whatever
	// their answer.
	CreateCalls int64 `json:"create_calls"`
	// TasksCreated counts tasks actually created (including lost responses).
	TasksCreated int64 `json:"tasks_created"`
	// DuplicateUniqueID counts 409 "duplicate unique_id" answers.
	DuplicateUniqueID int64 `json:"duplicate_unique_id"`
	// UniqueIDsCreatedTwice counts tasks created while another live task
	// held the same unique_id, per an independent ledger. It must stay 0.
	UniqueIDsCreatedTwice int64 `json:"unique_ids_created_twice"`
	// UniqueIDsReused counts tasks created with a unique_id that an earlier
	// task held and released (legitimate).
	UniqueIDsReused int64 `json:"unique_ids_reused"`
	// RateLimited counts 429 answers.
	RateLimited int64 `json:"rate_limited"`
	// MaxCreatesIn1s is the most accepted creates of one key in any sliding
	// one-second window (the max over keys); MaxCreatesIn1sByMode splits it
	// by the key's mode (one key per mode).
	MaxCreatesIn1s       int64            `json:"max_creates_in_1s"`
	MaxCreatesIn1sByMode map[string]int64 `json:"max_creates_in_1s_by_mode"`
	// CallbacksOK counts callback deliveries answered 2xx (a duplicated
	// callback counts once per copy); CallbacksFailed counts deliveries
	// abandoned after CallbackRetries failed attempts.
	CallbacksOK     int64 `json:"callbacks_ok"`
	CallbacksFailed int64 `json:"callbacks_failed"`
	// CallbacksSent counts callback HTTP attempts; CallbackAttemptsFailed
	// the attempts that got no 2xx (each is retried until the limit).
	CallbacksSent          int64 `json:"callbacks_sent"`
	CallbackAttemptsFailed int64 `json:"callback_attempts_failed"`
	// CallbacksDropped counts callbacks never sent (callback drop rate);
	// CallbacksDuplicated the extra copies sent (dup rate); CallbacksEarly
	// the callbacks delivered before their create was answered.
	CallbacksDropped    int64 `json:"callbacks_dropped"`
	CallbacksDuplicated int64 `json:"callbacks_duplicated"`
	CallbacksEarly      int64 `json:"callbacks_early"`
	// ErrorsInjected counts 500/503 answers of the error rate;
	// LostResponses the creates answered 500 after creating the task;
	// DownRejected the calls answered 503 while the API was down.
	ErrorsInjected int64 `json:"errors_injected"`
	LostResponses  int64 `json:"lost_responses"`
	DownRejected   int64 `json:"down_rejected"`
	// APICalls counts every API request (not /_sandbox).
	APICalls int64 `json:"api_calls"`
	// TasksByMode counts tasks created per mode; TasksByStatus counts the
	// current tasks per mode and status.
	TasksByMode   map[string]int64            `json:"tasks_by_mode"`
	TasksByStatus map[string]map[string]int64 `json:"tasks_by_status"`
}

var statusNames = [4]refonte.TaskStatus{refonte.StatusPending, refonte.StatusCompleted, refonte.StatusCanceled, refonte.StatusError}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		CreateCalls: c.createCalls.Load(), TasksCreated: c.tasksCreated.Load(),
		DuplicateUniqueID: c.duplicateUID.Load(), UniqueIDsCreatedTwice: c.createdTwice.Load(),
		UniqueIDsReused: c.uidReused.Load(), RateLimited: c.rateLimited.Load(),
		CallbacksOK: c.callbacksOK.Load(), CallbacksFailed: c.callbacksFailed.Load(),
		CallbacksSent: c.callbacksSent.Load(), CallbackAttemptsFailed: c.callbackAttemptsFailed.Load(),
		CallbacksDropped: c.callbacksDropped.Load(), CallbacksDuplicated: c.callbacksDuplicated.Load(),
		CallbacksEarly: c.callbacksEarly.Load(), ErrorsInjected: c.errorsInjected.Load(),
		LostResponses: c.lostResponses.Load(), DownRejected: c.downRejected.Load(), APICalls: c.apiCalls.Load(),
		MaxCreatesIn1sByMode: map[string]int64{}, TasksByMode: map[string]int64{},
		TasksByStatus: map[string]map[string]int64{},
	}
	for mode, w := range s.worlds {
		m := w.window.maximum()
		st.MaxCreatesIn1sByMode[string(mode)] = m
		st.MaxCreatesIn1s = max(st.MaxCreatesIn1s, m)
		byStatus := map[string]int64{}
		var total int64
		for i, name := range statusNames {
			n := w.status[i].Load()
			byStatus[string(name)] = n
			total += n
		}
		st.TasksByStatus[string(mode)] = byStatus
		st.TasksByMode[string(mode)] = total
	}
	return st
}

// CountByStatus returns the number of tasks of mode in each status.
func (s *Server) CountByStatus(mode refonte.Mode) map[refonte.TaskStatus]int {
	out := map[refonte.TaskStatus]int{}
	w, ok := s.worlds[mode]
	if !ok {
		return out
	}
	for i, name := range statusNames {
		out[name] = int(w.status[i].Load())
	}
	return out
}
