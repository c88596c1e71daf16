package console

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCleanLine(t *testing.T) {
	tests := []struct {
		raw   string
		text  string
		ts    float64
		hasTS bool
	}{
		{"[   12.345678] BUG: kernel NULL pointer dereference\n", "BUG: kernel NULL pointer dereference", 12.345678, true},
		{"[   12.345678] BUG: x\r\n", "BUG: x", 12.345678, true},
		{"[   12.345678][  T123] WARNING: CPU: 0 PID: 123 at x", "WARNING: CPU: 0 PID: 123 at x", 12.345678, true},
		{"[    1.000000][    C1]  ? kthread+0xe9/0x110", " ? kthread+0xe9/0x110", 1, true},
		{"[  246.219617]  __schedule+0x2f5/0x940", " __schedule+0x2f5/0x940", 246.219617, true},
		{"[   77.606585] ", "", 77.606585, true},
		{"[T57] Oops: 0002 [#1]", "Oops: 0002 [#1]", 0, false},
		{"<4>[    3.100000] Kernel panic - not syncing: x", "Kernel panic - not syncing: x", 3.1, true},
		// Another writer left an unterminated line before the kernel's.
		{"zr-agent: progress 12%[   40.000001] invalid opcode: 0000 [#1] SMP", "invalid opcode: 0000 [#1] SMP", 40.000001, true},
		{"\x1b[1;32mzr-agent: ok\x1b[0m\r\n", "zr-agent: ok", 0, false},
		{"zr-agent: plain", "zr-agent: plain", 0, false},
		// The OOM task table is not a timestamp.
		{"[    243]     0   243    25066 stress", "[    243]     0   243    25066 stress", 0, false},
	}
	for _, tt := range tests {
		text, ts, hasTS := cleanLine([]byte(tt.raw))
		if text != tt.text || ts != tt.ts || hasTS != tt.hasTS {
			t.Errorf("cleanLine(%q) = %q, %v, %v; want %q, %v, %v", tt.raw, text, ts, hasTS, tt.text, tt.ts, tt.hasTS)
		}
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		log  string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 3, "a\nb\nc"},
		{"a\nb\nc\n", 10, "a\nb\nc"},
		{"a\r\nb\r\nc\r\n", 2, "b\nc"},
		{"a\n\n\nb\n", 2, "\nb"},
		{"a\nb\n", 0, ""},
		{"", 5, ""},
		{"\n", 1, ""},
		{"only", 1, "only"},
	}
	for _, tt := range tests {
		if got := Tail([]byte(tt.log), tt.n); got != tt.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tt.log, tt.n, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	if got := Summary(nil); got != "no kernel reports" {
		t.Errorf("Summary(nil) = %q", got)
	}
	rs := []Report{
		{Kind: OOM, Title: "out of memory"},
		{Kind: Crash, Title: "kernel BUG in zswap_writeback_entry"},
		{Kind: OOM, Title: "out of memory"},
	}
	want := "oom: out of memory (x2); crash: kernel BUG in zswap_writeback_entry"
	if got := Summary(rs); got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

type brief struct {
	Kind     Kind
	Title    string
	Function string
}

func briefs(rs []Report) []brief {
	var b []brief
	for _, r := range rs {
		b = append(b, brief{r.Kind, r.Title, r.Function})
	}
	return b
}

func TestParseCases(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []brief
	}{
		{
			// The layout of Documentation/dev-tools/kcsan.rst; a KCSAN
			// report is recorded apart, and the crash after it is its own.
			name: "KCSAN data race, then a crash",
			log: "[   20.000000] ==================================================================\n" +
				"[   20.000001] BUG: KCSAN: data-race in zswap_writeback_entry.constprop.0 / zswap_frontswap_load\n" +
				"[   20.000002] \n" +
				"[   20.000003] write to 0xffff888004b1e0a8 of 8 bytes by task 77 on cpu 1:\n" +
				"[   20.000004]  zswap_frontswap_load+0x1c2/0x2b0\n" +
				"[   20.000005] \n" +
				"[   20.000006] read to 0xffff888004b1e0a8 of 8 bytes by task 31 on cpu 0:\n" +
				"[   20.000007]  zswap_writeback_entry.constprop.0+0x8d/0x3d0\n" +
				"[   20.000008] \n" +
				"[   20.000009] Reported by Kernel Concurrency Sanitizer on:\n" +
				"[   20.000010] ==================================================================\n" +
				"[   21.000000] BUG: KCSAN: data-race in __list_add\n" +
				"[   21.000001] ==================================================================\n" +
				"[   30.000000] kernel BUG at mm/zswap.c:1012!\n" +
				"[   30.000001] invalid opcode: 0000 [#1] SMP\n" +
				"[   30.000002] RIP: 0010:zswap_frontswap_load+0x210/0x2b0\n",
			want: []brief{
				{DataRace, "KCSAN: data-race in zswap_writeback_entry / zswap_frontswap_load", "zswap_frontswap_load"},
				{DataRace, "KCSAN: data-race in __list_add", ""},
				{Crash, "kernel BUG in zswap_frontswap_load", "zswap_frontswap_load"},
			},
		},
		{
			name: "old OOM panic wording",
			log: "stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
				"Mem-Info:\n" +
				"Out of memory and no killable processes...\n" +
				"Kernel panic - not syncing: Out of memory and no killable processes...\n",
			want: []brief{{OOM, "out of memory", ""}},
		},
		{
			name: "bare OOM panic",
			log:  "[    5.000000] Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled\n",
			want: []brief{{OOM, "out of memory", ""}},
		},
		{
			name: "memcg OOM kill without the header",
			log:  "[    5.000000] Memory cgroup out of memory: Killed process 99 (stress) total-vm:1kB\n",
			want: []brief{{OOM, "out of memory", ""}},
		},
		{
			name: "init killed without an OOM",
			log: "[    9.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n" +
				"[    9.000100] Call Trace:\n[    9.000200]  <TASK>\n[    9.000300]  dump_stack_lvl+0x45/0x5e\n" +
				"[    9.000400]  panic+0x11a/0x2d7\n[    9.000500]  do_exit.cold+0x15/0xa5\n" +
				"[    9.000600]  do_group_exit+0x2d/0x90\n[    9.000700]  </TASK>\n",
			want: []brief{{Crash, "kernel panic: Attempted to kill init!", "do_group_exit"}},
		},
		{
			name: "panic long after an OOM is not the OOM's",
			log: "[   10.000000] Out of memory: Killed process 5 (stress) total-vm:1kB\n" +
				"[   50.000000] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance.\n",
			want: []brief{{OOM, "out of memory", ""}, {Crash, "kernel panic: No working init found", ""}},
		},
		{
			name: "hung task panic",
			log: "[  130.000000] INFO: task stress:243 blocked for more than 122 seconds.\n" +
				"[  130.000100]  __schedule+0x2f5/0x940\n[  130.000200]  schedule+0x5d/0xe0\n" +
				"[  130.000300]  zswap_frontswap_store+0x2c1/0x6e0\n" +
				"[  130.000400] Kernel panic - not syncing: hung_task: blocked tasks\n",
			want: []brief{{Hang, "INFO: task hung in zswap_frontswap_store", "zswap_frontswap_store"}},
		},
		{
			name: "bare hung_task panic is a hang",
			log:  "[  130.000400] Kernel panic - not syncing: hung_task: blocked tasks\n",
			want: []brief{{Hang, "kernel panic: hung_task: blocked tasks", ""}},
		},
		{
			name: "kernel BUG without RIP",
			log:  "[    1.000000] kernel BUG at mm/zswap.c:1005!\n",
			want: []brief{{Crash, "kernel BUG at mm/zswap.c", ""}},
		},
		{
			name: "kernel BUG without BUGVERBOSE",
			log: "[    1.000000] Kernel BUG at zswap_writeback_entry+0x6a1/0x6b0 [verbose debug info unavailable]\n" +
				"[    1.000100] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\n",
			want: []brief{{Crash, "kernel BUG in zswap_writeback_entry", "zswap_writeback_entry"}},
		},
		{
			name: "second oops is a second report",
			log: "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008\n" +
				"[    1.000100] Oops: 0002 [#1] PREEMPT SMP NOPTI\n" +
				"[    1.000200] RIP: 0010:zswap_writeback_entry+0x2f4/0x6b0\n" +
				"[    1.000300] ---[ end trace 0000000000000000 ]---\n" +
				"[    2.000000] Oops: 0000 [#2] PREEMPT SMP NOPTI\n" +
				"[    2.000200] RIP: 0010:zswap_frontswap_load+0x2f4/0x6b0\n",
			want: []brief{
				{Crash, "BUG: kernel NULL pointer dereference in zswap_writeback_entry", "zswap_writeback_entry"},
				{Crash, "Oops in zswap_frontswap_load", "zswap_frontswap_load"},
			},
		},
		{
			name: "generic BUG lines",
			log: "[    1.000000] BUG: sleeping function called from invalid context at include/linux/sched/mm.h:274\n" +
				"[    1.000100]  dump_stack_lvl+0x45/0x5e\n[    1.000200]  __might_resched.cold+0xf4/0x12f\n" +
				"[    1.000300]  zswap_writeback_entry+0x2f4/0x6b0\n" +
				"[    3.000000] BUG: scheduling while atomic: kworker/u4:3/57/0x00000002\n" +
				"[    5.000000] BUG: Bad rss-counter state mm:00000000c5a2e1f7 type:MM_ANONPAGES val:1\n" +
				"[    7.000000] BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 31s!\n",
			want: []brief{
				{Crash, "BUG: sleeping function called from invalid context in zswap_writeback_entry", "zswap_writeback_entry"},
				{Crash, "BUG: scheduling while atomic", ""},
				{Crash, "BUG: Bad rss-counter state", ""},
				{Hang, "BUG: workqueue lockup", ""},
			},
		},
		{
			name: "lockdep",
			log: "[    1.000000] ======================================================\n" +
				"[    1.000000] WARNING: possible circular locking dependency detected\n" +
				"[    1.000000] 6.1.0-zr #1 Not tainted\n" +
				"[    1.000100] stack backtrace:\n[    1.000100] Call Trace:\n[    1.000100]  <TASK>\n" +
				"[    1.000100]  dump_stack_lvl+0x45/0x5e\n[    1.000100]  check_noncircular+0xfe/0x110\n" +
				"[    1.000100]  __lock_acquire+0x1197/0x1e10\n[    1.000100]  lock_acquire+0xc2/0x2b0\n" +
				"[    1.000100]  _raw_spin_lock+0x2a/0x40\n[    1.000100]  zswap_writeback_entry+0x1e2/0x6b0\n",
			want: []brief{{Warning, "WARNING: possible circular locking dependency detected in zswap_writeback_entry", "zswap_writeback_entry"}},
		},
		{
			name: "KASAN in a string function",
			log: "[    1.000000] BUG: KASAN: slab-out-of-bounds in memcpy+0x39/0x60\n" +
				"[    1.000000] Write of size 64 at addr ffff88800b2d7c18 by task stress/244\n" +
				"[    1.000000] Call Trace:\n[    1.000000]  <TASK>\n[    1.000000]  dump_stack_lvl+0x45/0x5e\n" +
				"[    1.000000]  print_report+0x174/0x47e\n[    1.000000]  kasan_report+0xb5/0x130\n" +
				"[    1.000000]  kasan_check_range+0x2c/0x1a0\n[    1.000000]  memcpy+0x39/0x60\n" +
				"[    1.000000]  zswap_frontswap_load+0x1d9/0x3e0\n",
			want: []brief{{Crash, "KASAN: slab-out-of-bounds Write in zswap_frontswap_load", "zswap_frontswap_load"}},
		},
		{
			name: "reboot closes a report",
			log: "[   10.000000] INFO: task stress:243 blocked for more than 122 seconds.\n" +
				"[    0.000000] Linux version 6.1.0-zr\n" +
				"[    0.500000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
			want: []brief{{Hang, "INFO: task hung", ""}, {Crash, "kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)", ""}},
		},
		{
			name: "not kernel headers",
			log: "[    0.012145] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!\n" +
				"zr-agent: WARNING: slow host\nzr-agent: INFO: task list sent\n" +
				"[    1.000000] ---[ end trace 0000000000000000 ]---\n",
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse([]byte(tt.log))
			if diff := cmp.Diff(tt.want, briefs(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			checkReports(t, []byte(tt.log), got)
		})
	}
}

func TestPanicReason(t *testing.T) {
	tests := map[string]string{
		"Fatal exception": "Fatal exception",
		"Attempted to kill init! exitcode=0x00000009":                                      "Attempted to kill init!",
		"stack-protector: Kernel stack is corrupted in: zswap_frontswap_store+0x2c1/0x6e0": "stack-protector: Kernel stack is corrupted in: zswap_frontswap_store",
		"CRED: put_cred_rcu() sees ffff888003a1c000 with usage 0":                          "CRED: put_cred_rcu() sees ADDR with usage 0",
		"Requested init /init failed (error -2).":                                          "Requested init /init failed (error -2)",
		"panic_on_warn set ...":                                                            "panic_on_warn set",
		"":                                                                                 "unknown reason",
	}
	for in, want := range tests {
		if got := panicReason(in); got != want {
			t.Errorf("panicReason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStartsAtLineStartWithCRLF(t *testing.T) {
	log := "boot\r\n[    1.000000] ------------[ cut here ]------------\r\n" +
		"[    1.000001] WARNING: CPU: 0 PID: 1 at mm/zswap.c:10 zswap_pool_get+0x1/0x2\r\n" +
		"[    1.000002] ---[ end trace 0000000000000000 ]---\r\nafter\r\n"
	rs := Parse([]byte(log))
	if len(rs) != 1 {
		t.Fatalf("got %d reports", len(rs))
	}
	r := rs[0]
	if want := strings.Index(log, "[    1.000000]"); r.Start != want {
		t.Errorf("Start = %d, want %d", r.Start, want)
	}
	if want := strings.Index(log, "after"); r.End != want {
		t.Errorf("End = %d, want %d", r.End, want)
	}
	wantText := "------------[ cut here ]------------\nWARNING: CPU: 0 PID: 1 at mm/zswap.c:10 zswap_pool_get+0x1/0x2\n---[ end trace 0000000000000000 ]---\n"
	if r.Text != wantText || r.Title != "WARNING in zswap_pool_get" {
		t.Errorf("got %q / %q", r.Title, r.Text)
	}
}

func TestClassify(t *testing.T) {
	tests := map[string]string{
		"Kernel panic - not syncing: Fatal exception":                                                "panic",
		"kernel BUG at mm/zswap.c:1005!":                                                             "kernel BUG at",
		"Kernel BUG at zswap_writeback_entry+0x6a1/0x6b0 [verbose debug info unavailable]":           "Kernel BUG at func",
		"BUG: KASAN: use-after-free in zswap_writeback_entry+0x8b5/0x9d0":                            "KASAN",
		"BUG: KASAN: wild-memory-access in range [0x0003088000000008-0x000308800000000f]":            "KASAN",
		"BUG: KFENCE: use-after-free read in zswap_writeback_entry+0x8b5/0x9d0":                      "KFENCE",
		"BUG: kernel NULL pointer dereference, address: 0000000000000008":                            "NULL pointer dereference",
		"BUG: unable to handle kernel NULL pointer dereference at 0000000000000008":                  "NULL pointer dereference",
		"BUG: unable to handle page fault for address: ffff888012c4f000":                             "page fault",
		"BUG: unable to handle kernel paging request at ffff888012c4f000":                            "paging request",
		"watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [stress:244]":                             "soft lockup",
		"BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 31s!":                 "workqueue lockup",
		"NMI watchdog: Watchdog detected hard LOCKUP on cpu 1":                                       "hard lockup",
		"BUG: scheduling while atomic: kworker/u4:3/57/0x00000002":                                   "BUG",
		"general protection fault, probably for non-canonical address 0xdffffc0000000003: 0000 [#1]": "general protection fault",
		"general protection fault: 0000 [#1] SMP":                                                    "general protection fault",
		"invalid opcode: 0000 [#1] PREEMPT SMP NOPTI":                                                "die",
		"Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI":                                          "die",
		"Oops: 0002 [#1] PREEMPT SMP NOPTI":                                                          "die",
		"divide error: 0000 [#1] PREEMPT SMP NOPTI":                                                  "die",
		"WARNING: CPU: 1 PID: 244 at mm/zswap.c:1239 zswap_frontswap_store+0x5bd/0x6e0":              "WARNING",
		"WARNING: possible circular locking dependency detected":                                     "lockdep WARNING",
		"UBSAN: array-index-out-of-bounds in mm/zswap.c:123:4":                                       "UBSAN",
		"INFO: task kworker/u4:1:45 blocked for more than 122 seconds.":                              "hung task",
		"rcu: INFO: rcu_preempt self-detected stall on CPU":                                          "RCU stall",
		"rcu: INFO: rcu_sched detected stalls on CPUs/tasks:":                                        "RCU stall",
		"rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... } 21002 jiffies":    "RCU stall",
		"INFO: rcu_sched self-detected stall on CPU":                                                 "RCU stall",
		"zr-agent invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0":          "oom-killer",
		"Out of memory: Killed process 243 (stress) total-vm:100264kB":                               "oom kill",
		"Memory cgroup out of memory: Killed process 243 (stress) total-vm:100264kB":                 "oom kill",
		"Out of memory and no killable processes...":                                                 "no killable processes",
		// Not headers.
		"RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks": "",
		"---[ end Kernel panic - not syncing: Fatal exception ]---":                          "",
		"KASAN: null-ptr-deref in range [0x0000000000000018-0x000000000000001f]":             "",
		"rcu: 	RCU event tracing is enabled.":                                                "",
		"oom_reaper: reaped process 243 (stress), now anon-rss:0kB":                          "",
		"page dumped because: kasan: bad access detected":                                    "",
	}
	for line, want := range tests {
		h, ok := classify(line)
		got := ""
		if ok {
			got = h.fam.name
		}
		if got != want {
			t.Errorf("classify(%q) = %q, want %q", line, got, want)
		}
	}
}
