package switchboard_test

import (
	"fmt"
	"log"
	"os"
	"time"

	"switchboard"
)

// A gateway's life in a few lines: provision, offer a call, apply the
// actions, answer, hang up.
func Example() {
	dir, _ := os.MkdirTemp("", "sb-example-")
	defer os.RemoveAll(dir)
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	eng, err := switchboard.Open(switchboard.Config{
		DataDir:   dir,
		PolicyDir: "../../policies", // the stock policies
		Sync:      switchboard.SyncNone,
		Clock:     func() time.Time { return now },
		LogLevel:  switchboard.LogWarn,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	eng.AccountPut(`{"id":"acme","name":"Acme Ltd"}`)
	eng.AgentPut("acme", map[string]any{"id": "alice", "status": "available",
		"devices": map[string]string{"softphone": "sip:alice@pbx.example"}})
	eng.QueuePut("acme", `{"id":"support","policy":"longest-idle","members":[{"agent":"alice"}]}`)

	actions, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer,
		Call: "c1", Queue: "support", Caller: "+442079460001"})
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range actions {
		if a.Type == switchboard.ActionRing {
			fmt.Printf("ring %s at %s for %v\n", a.Agent, a.URI, a.Timeout)
		}
	}
	actions, _ = eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult,
		Call: "c1", Agent: "alice", Outcome: switchboard.Answered})
	fmt.Println(actions[0].Type, actions[0].Call, "to", actions[0].Agent)
	_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: "nope"})
	fmt.Println(err)
	// Output:
	// ring alice at sip:alice@pbx.example for 20s
	// connect c1 to alice
	// SB_ENOTFOUND: no such call 'nope' (field call)
}
