package console

import (
	"regexp"
	"strings"
)

var (
	// " zswap_writeback_entry+0x6a1/0x6b0", " ? kthread+0xe9/0x110",
	// " [<ffffffff81234567>] func+0x12/0x34 [module]" (old kernels).
	frameRe = regexp.MustCompile(`^(?:\[<[0-9a-f]+>\] )?(\? )?` + symRe + `\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[^\]]+\])?$`)
	// "RIP: 0010:zswap_writeback_entry+0x6a1/0x6b0". 0010 is the kernel code
	// segment; "RIP: 0033:0x7f..." is the user-space context.
	ripRe = regexp.MustCompile(`^RIP: 0010:(?:\[<[0-9a-f]+>\] )?` + symRe + `\+0x[0-9a-f]+/0x[0-9a-f]+`)
)

// skipFrames matches functions that are never the culprit: the reporting
// machinery (dump_stack, panic, __warn, report_bug, die, exception entry,
// KASAN), and the generic helpers a bug is usually found in but not caused
// by (string functions, allocators, locks, sleeping and waiting primitives).
var skipFrames = regexp.MustCompile(`^(?:` + strings.Join([]string{
	// stack dumping and panicking
	`dump_stack(?:_lvl)?`, `__dump_stack`, `show_stack`, `show_trace_log_lvl`, `show_regs`, `__show_regs`,
	`show_regs_if_on_stack`, `sched_show_task`, `show_state_filter`,
	`panic`, `__panic`, `nmi_panic`, `vpanic`, `check_panic_on_warn`, `do_exit`, `make_task_dead`, `rewind_stack_and_make_dead`,
	`rewind_stack_do_exit`,
	// WARN/BUG
	`__warn`, `__warn_printk`, `warn_slowpath.*`, `refcount_warn_saturate`, `__refcount_\w+`, `refcount_(?:inc|dec|add|sub)\w*`, `__report_bug`, `report_bug`, `handle_bug`, `fixup_bug`,
	`__ubsan_.*`, `ubsan_.*`,
	// traps and exception entry
	`die`, `__die`, `__die_body`, `die_addr`, `oops_begin`, `oops_end`, `do_trap`, `do_error_trap`,
	`do_int3.*`, `math_error`, `(?:asm_)?exc_.*`, `asm_sysvec_.*`, `(?:__)?sysvec_.*`, `(?:asm_)?common_interrupt`,
	`page_fault_oops`, `kernelmode_fixup_or_oops`, `(?:__)?bad_area.*`, `do_user_addr_fault`, `do_kern_addr_fault`,
	`handle_page_fault`, `spurious_kernel_fault`, `fixup_exception`, `no_context`, `do_general_protection`,
	// KASAN, KFENCE
	`kasan_.*`, `__kasan_.*`, `__asan_.*`, `asan_.*`, `check_region_inline`, `check_memory_region.*`,
	`print_report`, `print_address_description.*`, `describe_object.*`, `start_report`, `end_report`, `kfence_.*`, `__kfence_.*`,
	// detectors
	`watchdog_timer_fn`, `__hrtimer_run_queues`, `hrtimer_interrupt`, `rcu_sched_clock_irq`, `update_process_times`,
	`tick_sched_handle`, `tick_sched_timer`, `tick_nohz_handler`, `nmi_cpu_backtrace.*`, `nmi_trigger_cpumask_backtrace`,
	`arch_trigger_cpumask_backtrace`, `trigger_.*backtrace`, `rcu_dump_cpu_stacks`, `print_cpu_stall`, `print_other_cpu_stall`,
	`check_cpu_stall`, `rcu_pending`, `dump_cpu_task`, `check_hung_uninterruptible_tasks`, `check_hung_task`, `watchdog`,
	`nmi_handle`, `default_do_nmi`, `(?:asm_)?exc_nmi`, `perf_event_nmi_handler`,
	// string and copy helpers
	`mem(?:cpy|move|set|cmp|chr|scan)(?:_erms|_orig)?`, `__mem(?:cpy|move|set|cmp)`, `bcmp`,
	`_*str(?:n)?(?:len|cmp|cpy|cat|chr|rchr|str|sep|scpy|lcpy|casecmp)`,
	`copy_user_\w+`, `__copy_user\w*`, `_copy_(?:to|from)_user`, `copy_page`, `copy_mc_\w+`,
	// allocators
	`(?:__)?kmalloc\w*`, `kmem_cache_\w+`, `__kmem_cache_\w+`, `slab_\w+`, `___slab_alloc`, `__slab_alloc\w*`, `new_slab`,
	`allocate_slab`, `kfree`, `kvfree`, `__kfree\w*`, `kzalloc`, `kcalloc`, `krealloc`, `kvmalloc\w*`, `kvzalloc`,
	`v[mz]alloc`, `__vmalloc\w*`, `(?:__)?alloc_pages\w*`, `alloc_page_\w+`, `__folio_alloc`, `folio_alloc`, `vma_alloc_folio`,
	`__get_free_pages`, `get_zeroed_page`, `kmemdup`, `kstrdup`,
	// OOM killer
	`dump_header`, `oom_kill_process`, `out_of_memory`, `pagefault_out_of_memory`, `mem_cgroup_out_of_memory`,
	// locking and lockdep
	`(?:raw_|_raw_|__raw_|do_raw_)?(?:spin|read|write)_(?:lock|unlock|trylock)\w*`, `queued_\w+`, `native_\w+`,
	`__pv_queued_\w+`, `pv_(?:wait|kick|hash)\w*`, `(?:__)?lock_(?:acquire|release|acquired|contended)`,
	`mark_lock\w*`, `validate_chain`, `check_prevs?_add`, `check_noncircular`, `print_\w+_bug\w*`, `lockdep_\w+`,
	`__lockdep_\w+`, `lock_is_held\w*`, `(?:__)?mutex_(?:lock|unlock|trylock)\w*`, `__mutex_\w+`, `(?:__)?rt_mutex_\w+`,
	`(?:__)?(?:down|up)(?:_read|_write)?(?:_killable|_interruptible|_trylock|_timeout|_slowpath)?`,
	`rwsem_\w+`, `__rwsem_\w+`, `percpu_(?:down|up)_\w+`, `__percpu_(?:down|up)_\w+`, `percpu_rwsem_\w+`,
	// sleeping and waiting
	`(?:__)?schedule\w*`, `preempt_schedule\w*`, `io_schedule\w*`, `(?:__|_)?cond_resched\w*`,
	`(?:__)?wait_for_(?:completion|common)\w*`, `do_wait_for_common`, `(?:__)?wait_rcu_gp`, `synchronize_rcu\w*`,
	`(?:__)?synchronize_srcu\w*`, `(?:__)?flush_work\w*`, `drain_workqueue`, `msleep\w*`, `usleep_range\w*`,
	`schedule_hrtimeout\w*`, `do_nanosleep`, `hrtimer_nanosleep`, `folio_wait_\w+`, `__folio_lock\w*`,
	`wait_on_page_\w+`, `__lock_page\w*`, `(?:__|out_of_line_)?wait_on_bit\w*`, `bit_wait\w*`,
	`prepare_to_wait\w*`, `finish_wait`, `wait_woken`, `__might_(?:sleep|resched|fault)`, `___might_sleep`, `__cant_sleep`,
	// process entry and exit points
	`ret_from_fork\w*`, `kthread`,
}, "|") + `)$`)

// normFunc drops compiler suffixes: "shrink_worker.cold" and
// "__mutex_lock.constprop.0" become "shrink_worker" and "__mutex_lock".
func normFunc(fn string) string {
	if i := strings.IndexByte(fn, '.'); i > 0 {
		fn = fn[:i]
	}
	return fn
}

func skipFunc(fn string) bool {
	return skipFrames.MatchString(fn)
}

// guiltyFunction picks the function to blame: the one the header names,
// else the first kernel RIP, else the first reliable call trace frame, in
// the order they appear, that is not a generic frame. Hangs ignore frames
// printed in <IRQ>/<NMI> sections (the detector's own).
func guiltyFunction(f *family, m []string, lines []line) string {
	if f.fn != 0 && f.fn < len(m) && m[f.fn] != "" {
		if fn := normFunc(m[f.fn]); !skipFunc(fn) {
			return fn
		}
	}
	inIRQ := false
	for _, l := range lines {
		s := strings.TrimSpace(l.text)
		switch s {
		case "<IRQ>", "<NMI>", "<SOFTIRQ>", "<#DF>", "<#MC>", "<#DB>", "<#VC>":
			inIRQ = true
			continue
		case "</IRQ>", "</NMI>", "</SOFTIRQ>", "<EOI>", "<EOE>", "<TASK>", "</TASK>", "Call Trace:":
			inIRQ = false
			continue
		}
		var fn string
		if mm := ripRe.FindStringSubmatch(s); mm != nil {
			fn = mm[1]
		} else if mm := frameRe.FindStringSubmatch(s); mm != nil && mm[1] == "" {
			fn = mm[2]
		} else {
			continue
		}
		if inIRQ && f.skipIRQs {
			continue
		}
		if fn = normFunc(fn); !skipFunc(fn) {
			return fn
		}
	}
	return ""
}
