package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

// scheduler runs the two kernels of a comparison, jobs VMs at a time, and
// keeps every run that finished. Which run comes next is the design's
// choice; the scheduler only provides VMs and results.
type scheduler struct {
	env  *env
	jobs int
	sig  report.Signature
	imgs map[string]bootImage

	results  map[string][]report.Run
	inFlight map[string]int
	started  map[string]int
	done     chan report.Run
}

func (s *scheduler) init() {
	s.results, s.inFlight, s.started = map[string][]report.Run{}, map[string]int{}, map[string]int{}
	s.done = make(chan report.Run, s.jobs)
}

func (s *scheduler) start(ctx context.Context, variant string) {
	s.started[variant]++
	s.inFlight[variant]++
	i := s.started[variant]
	go func() { s.done <- s.env.run(ctx, variant, i, s.imgs[variant], true) }()
}

// wait takes one finished run.
func (s *scheduler) wait() {
	r := <-s.done
	s.inFlight[r.Variant]--
	s.results[r.Variant] = append(s.results[r.Variant], r)
}

func (s *scheduler) busy() int { return s.inFlight["unpatched"] + s.inFlight["patched"] }

func (s *scheduler) drain() {
	for s.busy() > 0 {
		s.wait()
	}
}

// variants aggregates what finished, with the race's signature learned
// from the unpatched runs.
func (s *scheduler) variants() (un, pa report.Variant, sig report.Signature) {
	byIndex := func(a, b report.Run) int { return a.Index - b.Index }
	slices.SortFunc(s.results["unpatched"], byIndex)
	slices.SortFunc(s.results["patched"], byIndex)
	sig = s.sig
	if len(sig.Patterns) == 0 {
		sig = sig.Learn(s.results["unpatched"])
	}
	un = report.Aggregate("unpatched", s.imgs["unpatched"].Kernel, s.results["unpatched"], sig)
	pa = report.Aggregate("patched", s.imgs["patched"].Kernel, s.results["patched"], sig)
	return un, pa, sig
}

// run asks the plan what to run whenever a VM is free or a run ends,
// until it says stop; its budget is wall time since the first run started.
func (s *scheduler) run(ctx context.Context, d verdict.Plan) {
	s.init()
	begin := time.Now()
	lastWhy := ""
	for ctx.Err() == nil {
		un, pa, _ := s.variants()
		st := verdict.State{Unpatched: counts(un), Patched: counts(pa),
			InFlightUnpatched: s.inFlight["unpatched"], InFlightPatched: s.inFlight["patched"],
			Spent: time.Since(begin).Seconds()}
		act, why := d.Next(st)
		if why != lastWhy && why != "" {
			s.env.say(why)
			lastWhy = why
		}
		switch {
		case act == verdict.Stop:
			s.drain()
			return
		case act == verdict.Wait || s.busy() == s.jobs:
			if s.busy() == 0 {
				return // nothing to wait for: the design is stuck
			}
			s.wait()
		case act == verdict.RunUnpatched:
			s.start(ctx, "unpatched")
		case act == verdict.RunPatched:
			s.start(ctx, "patched")
		default:
			s.env.say(fmt.Sprintf("harness bug: unknown design action %v; stopping", act))
			s.drain()
			return
		}
	}
	s.drain()
}
