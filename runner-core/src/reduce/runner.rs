//! [`ReduceRunner`]: windows, triggers and panes for every key of one aggregation.

use super::pane::{
    combine_holds, describe_pane, element_hold, need_to_emit, output_watermark, pane_timestamp,
};
use super::{ElementOutcome, FiredPane, Key, ReduceFn};
use crate::error::{ExecError, ExecResult};
use crate::trigger::{TriggerContext, TriggerState};
use crate::window::{end_of_window_reached, gc_time, merge_windows, window_is_expired, MergeGroup};
use std::collections::{BTreeMap, BTreeSet};
use weir_model::time::{Duration, Timestamp, MIN_TIMESTAMP};
use weir_model::window::{
    AccumulationMode, ClosingBehavior, PaneInfo, TimestampCombiner, Trigger, Window, WindowFn,
    WindowingStrategy,
};

/// Runs the windowing strategy of one aggregation over all its keys (see the module docs of
/// [`crate::reduce`]). Single-threaded and deterministic: panes fired by one call come out in
/// element order (for elements) or ordered by window end, window start, then key (for
/// watermark and processing-time advances).
///
/// # Examples
///
/// Counting elements per key in fixed windows of 10 ms with the default trigger:
///
/// ```
/// use weir_model::window::{PaneTiming, Window, WindowFn, WindowingStrategy};
/// use weir_model::Duration;
/// use weir_runner_core::error::ExecResult;
/// use weir_runner_core::reduce::{Key, ReduceFn, ReduceRunner};
/// use weir_runner_core::window::fixed_window;
///
/// struct CountElements;
///
/// impl ReduceFn for CountElements {
///     type Input = ();
///     type Contents = u64;
///     fn create(&self) -> u64 {
///         0
///     }
///     fn add(&self, n: &mut u64, _: ()) -> ExecResult<()> {
///         *n += 1;
///         Ok(())
///     }
///     fn merge(&self, n: &mut u64, other: u64) -> ExecResult<()> {
///         *n += other;
///         Ok(())
///     }
/// }
///
/// let strategy = WindowingStrategy::new(WindowFn::Fixed { size: Duration(10), offset: Duration(0) });
/// let mut runner = ReduceRunner::new(CountElements, &strategy);
/// let alice = Key::new(&[serde_json::json!("alice")]);
/// let mut panes = Vec::new();
/// for ts in [1, 4, 12] {
///     runner.process_element(&alice, fixed_window(ts, 10, 0), ts, (), 0, &mut panes)?;
/// }
/// // The watermark passes the end of [0, 10): its ON_TIME pane fires; [10, 20) is pending.
/// assert_eq!(runner.advance_watermark(10, 0, &mut panes)?, 10);
/// assert_eq!(panes.len(), 1);
/// assert_eq!(panes[0].window, Window::new(0, 10));
/// assert_eq!(panes[0].pane.timing, PaneTiming::OnTime);
/// assert_eq!(panes[0].contents, 2);
/// # Ok::<(), weir_runner_core::ExecError>(())
/// ```
#[derive(Debug)]
pub struct ReduceRunner<R: ReduceFn> {
    reduce: R,
    window_fn: WindowFn,
    trigger: Trigger,
    accumulation: AccumulationMode,
    allowed_lateness: Duration,
    closing: ClosingBehavior,
    timestamp_combiner: TimestampCombiner,
    merging: bool,
    keys: BTreeMap<Key, KeyWindows<R::Contents>>,
    /// End-of-window and garbage-collection wake-ups: (time, key, window), due when the
    /// input watermark is past `time`.
    event_wakeups: BTreeSet<(Timestamp, Key, Window)>,
    /// Processing-time trigger deadlines: due when processing time reaches `time`.
    processing_wakeups: BTreeSet<(Timestamp, Key, Window)>,
    /// Output watermark holds of pending panes (a multiset).
    holds: BTreeMap<Timestamp, usize>,
    input_watermark: Timestamp,
    output_watermark: Timestamp,
}

/// The windows of one key.
#[derive(Debug)]
struct KeyWindows<C> {
    active: BTreeMap<Window, WindowState<C>>,
    /// Windows whose trigger finished, kept until garbage collection so that their late
    /// elements are dropped (Beam keeps the trigger's finished bits until then).
    closed: BTreeSet<Window>,
}

impl<C> Default for KeyWindows<C> {
    fn default() -> Self {
        KeyWindows {
            active: BTreeMap::new(),
            closed: BTreeSet::new(),
        }
    }
}

/// Everything kept for one active key and window.
#[derive(Debug)]
struct WindowState<C> {
    contents: C,
    trigger: TriggerState,
    /// The last pane emitted (Beam's `PaneInfoTracker` state).
    last_pane: Option<PaneInfo>,
    /// Elements added since the last firing (Beam's `NonEmptyPanes`).
    new_elements: u64,
    /// (earliest, latest) timestamp of those elements.
    new_span: Option<(Timestamp, Timestamp)>,
    /// The output watermark hold of the pending pane.
    hold: Option<Timestamp>,
    /// Whether the end-of-window wake-up is still to come (else the next wake-up is
    /// garbage collection).
    end_of_window_pending: bool,
    registered_event: Option<Timestamp>,
    registered_processing: Option<Timestamp>,
    registered_hold: Option<Timestamp>,
}

impl<R: ReduceFn> ReduceRunner<R> {
    /// A runner of `strategy` accumulating with `reduce`.
    pub fn new(reduce: R, strategy: &WindowingStrategy) -> Self {
        ReduceRunner {
            reduce,
            window_fn: strategy.window_fn.clone(),
            trigger: strategy.trigger.clone(),
            accumulation: strategy.accumulation,
            allowed_lateness: strategy.allowed_lateness,
            closing: strategy.closing,
            timestamp_combiner: strategy.timestamp_combiner,
            merging: strategy.window_fn.is_merging(),
            keys: BTreeMap::new(),
            event_wakeups: BTreeSet::new(),
            processing_wakeups: BTreeSet::new(),
            holds: BTreeMap::new(),
            input_watermark: MIN_TIMESTAMP,
            output_watermark: MIN_TIMESTAMP,
        }
    }

    /// The reduce function.
    pub fn reduce(&self) -> &R {
        &self.reduce
    }

    /// The last input watermark given to [`ReduceRunner::advance_watermark`].
    pub fn input_watermark(&self) -> Timestamp {
        self.input_watermark
    }

    /// The output watermark computed by the last [`ReduceRunner::advance_watermark`].
    pub fn output_watermark(&self) -> Timestamp {
        self.output_watermark
    }

    /// The earliest processing time at which a trigger may fire, if any.
    pub fn next_processing_time(&self) -> Option<Timestamp> {
        self.processing_wakeups.first().map(|(t, _, _)| *t)
    }

    /// Number of windows holding state (active or closed), over all keys.
    pub fn window_count(&self) -> usize {
        self.keys
            .values()
            .map(|k| k.active.len() + k.closed.len())
            .sum()
    }

    /// Processes one element of `key` in `window` (its assigned window; a proto-window for
    /// merging functions) at `processing_time`. Panes it fires are appended to `out`.
    pub fn process_element(
        &mut self,
        key: &Key,
        window: Window,
        timestamp: Timestamp,
        input: R::Input,
        processing_time: Timestamp,
        out: &mut Vec<FiredPane<R::Contents>>,
    ) -> ExecResult<ElementOutcome> {
        // Beam's LateDataDroppingDoFnRunner runs before merging, on the assigned window.
        if window_is_expired(&window, self.allowed_lateness, self.input_watermark) {
            return Ok(ElementOutcome::Expired);
        }
        let window = if self.merging {
            match self.merge_for_element(key, window, processing_time)? {
                Some(merged) => merged,
                None => return Ok(ElementOutcome::Closed),
            }
        } else if self
            .keys
            .get(key)
            .is_some_and(|k| k.closed.contains(&window))
        {
            return Ok(ElementOutcome::Closed);
        } else {
            window
        };
        let cx = self.context(window, processing_time);
        let mut st = match self.take_state(key, window) {
            Some(st) => st,
            None => self.new_state(window),
        };
        self.reduce.add(&mut st.contents, input)?;
        st.trigger.on_element(&cx);
        st.new_elements += 1;
        st.new_span = Some(match st.new_span {
            Some((lo, hi)) => (lo.min(timestamp), hi.max(timestamp)),
            None => (timestamp, timestamp),
        });
        if let Some(h) = element_hold(
            self.timestamp_combiner,
            &window,
            timestamp,
            self.output_watermark,
        ) {
            st.hold = Some(
                st.hold
                    .map_or(h, |old| combine_holds(self.timestamp_combiner, old, h)),
            );
        }
        if st.trigger.should_fire(&cx) {
            if let Some(st) = self.emit(key, window, st, &cx, out)? {
                self.put_state(key, window, st, processing_time);
            }
        } else {
            self.put_state(key, window, st, processing_time);
        }
        Ok(ElementOutcome::Accepted)
    }

    /// The input watermark advanced to `watermark`: fires windows whose end it passed and
    /// garbage-collects expired windows (with their final pane). Returns the output
    /// watermark. A watermark at `MAX_TIMESTAMP` (end of input) collects every window.
    pub fn advance_watermark(
        &mut self,
        watermark: Timestamp,
        processing_time: Timestamp,
        out: &mut Vec<FiredPane<R::Contents>>,
    ) -> ExecResult<Timestamp> {
        self.input_watermark = self.input_watermark.max(watermark);
        let wm = self.input_watermark;
        let not_due = self.event_wakeups.split_off(&(
            wm,
            Key::lowest(),
            Window::new(MIN_TIMESTAMP, MIN_TIMESTAMP),
        ));
        let due = std::mem::replace(&mut self.event_wakeups, not_due);
        for (key, window) in firing_order(due) {
            self.on_event_time(&key, window, processing_time, out)?;
        }
        self.output_watermark =
            output_watermark(self.output_watermark, wm, self.holds.keys().next().copied());
        Ok(self.output_watermark)
    }

    /// Processing time advanced to `processing_time`: fires triggers whose deadline it
    /// reached.
    pub fn advance_processing_time(
        &mut self,
        processing_time: Timestamp,
        out: &mut Vec<FiredPane<R::Contents>>,
    ) -> ExecResult<()> {
        let bound = (
            processing_time.saturating_add(1),
            Key::lowest(),
            Window::new(MIN_TIMESTAMP, MIN_TIMESTAMP),
        );
        let not_due = self.processing_wakeups.split_off(&bound);
        let due = std::mem::replace(&mut self.processing_wakeups, not_due);
        for (key, window) in firing_order(due) {
            let Some(mut st) = self.take_state(&key, window) else {
                continue;
            };
            st.registered_processing = None;
            let cx = self.context(window, processing_time);
            let st = if st.trigger.should_fire(&cx) {
                self.emit(&key, window, st, &cx, out)?
            } else {
                Some(st)
            };
            if let Some(st) = st {
                self.put_state(&key, window, st, processing_time);
            }
        }
        Ok(())
    }

    /// An end-of-window or garbage-collection wake-up of one window (Beam's
    /// `ReduceFnRunner.onTimers`).
    fn on_event_time(
        &mut self,
        key: &Key,
        window: Window,
        processing_time: Timestamp,
        out: &mut Vec<FiredPane<R::Contents>>,
    ) -> ExecResult<()> {
        let expired = window_is_expired(&window, self.allowed_lateness, self.input_watermark);
        if self
            .keys
            .get(key)
            .is_some_and(|kw| kw.closed.contains(&window))
        {
            if expired {
                if let Some(kw) = self.keys.get_mut(key) {
                    kw.closed.remove(&window);
                }
                self.drop_key_if_empty(key);
            } else {
                self.event_wakeups.insert((
                    gc_time(&window, self.allowed_lateness),
                    key.clone(),
                    window,
                ));
            }
            return Ok(());
        }
        let Some(mut st) = self.take_state(key, window) else {
            return Ok(());
        };
        st.registered_event = None;
        let cx = self.context(window, processing_time);
        if st.end_of_window_pending {
            st.end_of_window_pending = false;
            // With no allowed lateness the end-of-window wake-up *is* garbage collection:
            // Beam then only emits the final pane, without consulting the trigger.
            if !end_of_window_is_gc(&window, self.allowed_lateness) && st.trigger.should_fire(&cx) {
                match self.emit(key, window, st, &cx, out)? {
                    Some(next) => st = next,
                    None => return Ok(()),
                }
            }
        }
        if expired {
            self.garbage_collect(key, window, st, out)
        } else {
            self.put_state(key, window, st, processing_time);
            Ok(())
        }
    }

    /// The trigger fired: run it, produce the pane, discard or keep the contents, and close
    /// the window when the trigger finished (Beam's `ReduceFnRunner.emit`). Returns the
    /// state to keep, or `None` when the window closed.
    fn emit(
        &mut self,
        key: &Key,
        window: Window,
        mut st: WindowState<R::Contents>,
        cx: &TriggerContext,
        out: &mut Vec<FiredPane<R::Contents>>,
    ) -> ExecResult<Option<WindowState<R::Contents>>> {
        st.trigger.on_fire(cx);
        let finished = st.trigger.is_finished();
        self.fire_pane(key, window, &mut st, finished, out);
        if finished {
            self.unregister(key, window, &mut st);
            self.close_window(key, window);
            return Ok(None);
        }
        if self.accumulation == AccumulationMode::Discarding {
            st.contents = self.reduce.create();
        }
        Ok(Some(st))
    }

    /// Produces the pane of `st` if there is one to emit (Beam's `ReduceFnRunner.onTrigger`),
    /// and starts a new pane.
    fn fire_pane(
        &mut self,
        key: &Key,
        window: Window,
        st: &mut WindowState<R::Contents>,
        is_final: bool,
        out: &mut Vec<FiredPane<R::Contents>>,
    ) {
        let pane = describe_pane(
            st.last_pane.as_ref(),
            &window,
            is_final,
            self.input_watermark,
            self.output_watermark,
        );
        if need_to_emit(st.new_elements == 0, is_final, pane.timing, self.closing) {
            let timestamp = pane_timestamp(self.timestamp_combiner, &window, st.new_span);
            let contents = if is_final || self.accumulation == AccumulationMode::Discarding {
                std::mem::replace(&mut st.contents, self.reduce.create())
            } else {
                st.contents.clone()
            };
            st.last_pane = Some(pane);
            out.push(FiredPane {
                key: key.clone(),
                window,
                pane,
                timestamp,
                contents,
            });
        }
        st.new_elements = 0;
        st.new_span = None;
        st.hold = None;
    }

    /// The window is expired: emit its final pane (if non-empty, or always with
    /// `FireAlways`) and free its state.
    fn garbage_collect(
        &mut self,
        key: &Key,
        window: Window,
        mut st: WindowState<R::Contents>,
        out: &mut Vec<FiredPane<R::Contents>>,
    ) -> ExecResult<()> {
        self.fire_pane(key, window, &mut st, true, out);
        self.unregister(key, window, &mut st);
        self.drop_key_if_empty(key);
        Ok(())
    }

    /// Adds the new proto-window `proto` to the active windows of `key` and merges them.
    /// Returns the window the element belongs to, or `None` when that window is closed (the
    /// merge is then not applied).
    ///
    /// Closed windows (finished triggers) take no part in merging, as in Beam, where they
    /// leave the active window set: a later element starts a new session next to them,
    /// unless its merged window is exactly a closed window.
    fn merge_for_element(
        &mut self,
        key: &Key,
        proto: Window,
        processing_time: Timestamp,
    ) -> ExecResult<Option<Window>> {
        let mut windows: Vec<Window> = self
            .keys
            .get(key)
            .map(|kw| kw.active.keys().copied().collect())
            .unwrap_or_default();
        if !windows.contains(&proto) {
            windows.push(proto);
        }
        let groups = merge_windows(&self.window_fn, &windows);
        let Some(own) = groups.iter().find(|g| g.members.contains(&proto)) else {
            return Err(ExecError::Internal(format!(
                "window merging lost the window {proto:?}"
            )));
        };
        let is_closed = |w: &Window| self.keys.get(key).is_some_and(|kw| kw.closed.contains(w));
        if is_closed(&own.result) {
            return Ok(None);
        }
        let result = own.result;
        let merges: Vec<&MergeGroup> = groups
            .iter()
            .filter(|g| g.is_merge() && !is_closed(&g.result))
            .collect();
        for group in merges {
            self.apply_merge(key, group, processing_time)?;
        }
        Ok(Some(result))
    }

    /// Merges the states of the active members of `group` into one state for its result
    /// window: contents by the reduce function, trigger states by the trigger's merge rules,
    /// new-element counts and holds combined; the pane history is kept only when the result
    /// window was itself active (Beam: "the merge result window gets to start fresh if it is
    /// new").
    fn apply_merge(
        &mut self,
        key: &Key,
        group: &MergeGroup,
        processing_time: Timestamp,
    ) -> ExecResult<()> {
        let mut parts: Vec<(Window, WindowState<R::Contents>)> = Vec::new();
        for w in &group.members {
            if let Some(mut st) = self.take_state(key, *w) {
                self.unregister(key, *w, &mut st);
                parts.push((*w, st));
            }
        }
        if parts.is_empty() {
            return Ok(());
        }
        let result = group.result;
        let cx = self.context(result, processing_time);
        let initial = parts.iter().position(|(w, _)| *w == result);
        let trigger = {
            let triggers: Vec<&TriggerState> = parts.iter().map(|(_, st)| &st.trigger).collect();
            TriggerState::merged(&triggers, initial.map(|i| &parts[i].1.trigger), &cx)
        };
        let mut merged = self.new_state(result);
        merged.trigger = trigger;
        merged.last_pane = initial.and_then(|i| parts[i].1.last_pane);
        for (_, st) in parts {
            self.reduce.merge(&mut merged.contents, st.contents)?;
            merged.new_elements += st.new_elements;
            merged.new_span = match (merged.new_span, st.new_span) {
                (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                (a, b) => a.or(b),
            };
            merged.hold = match (merged.hold, st.hold) {
                (Some(a), Some(b)) => Some(combine_holds(self.timestamp_combiner, a, b)),
                (a, b) => a.or(b),
            };
        }
        if self.timestamp_combiner == TimestampCombiner::EndOfWindow && merged.hold.is_some() {
            merged.hold = Some(result.max_timestamp());
        }
        self.put_state(key, result, merged, processing_time);
        Ok(())
    }

    fn new_state(&self, window: Window) -> WindowState<R::Contents> {
        WindowState {
            contents: self.reduce.create(),
            trigger: TriggerState::new(&self.trigger),
            last_pane: None,
            new_elements: 0,
            new_span: None,
            hold: None,
            // Beam's scheduleEndOfWindowOrGarbageCollectionTimer: a window created after the
            // watermark passed its end waits only for garbage collection.
            end_of_window_pending: !end_of_window_reached(&window, self.input_watermark),
            registered_event: None,
            registered_processing: None,
            registered_hold: None,
        }
    }

    fn context(&self, window: Window, processing_time: Timestamp) -> TriggerContext {
        TriggerContext {
            window,
            input_watermark: self.input_watermark,
            processing_time,
            merging: self.merging,
        }
    }

    /// Takes the active state of (key, window) out of the map (its wake-ups and hold stay
    /// registered until [`Self::put_state`] or [`Self::unregister`]).
    fn take_state(&mut self, key: &Key, window: Window) -> Option<WindowState<R::Contents>> {
        self.keys.get_mut(key)?.active.remove(&window)
    }

    /// Puts a state back, registering its wake-ups and hold.
    fn put_state(
        &mut self,
        key: &Key,
        window: Window,
        mut st: WindowState<R::Contents>,
        processing_time: Timestamp,
    ) {
        let event = if st.end_of_window_pending {
            window.max_timestamp()
        } else {
            gc_time(&window, self.allowed_lateness)
        };
        if st.registered_event != Some(event) {
            if let Some(old) = st.registered_event.take() {
                self.event_wakeups.remove(&(old, key.clone(), window));
            }
            self.event_wakeups.insert((event, key.clone(), window));
            st.registered_event = Some(event);
        }
        let processing = st.trigger.next_processing_time(processing_time);
        if st.registered_processing != processing {
            if let Some(old) = st.registered_processing.take() {
                self.processing_wakeups.remove(&(old, key.clone(), window));
            }
            if let Some(t) = processing {
                self.processing_wakeups.insert((t, key.clone(), window));
            }
            st.registered_processing = processing;
        }
        if st.registered_hold != st.hold {
            if let Some(old) = st.registered_hold.take() {
                release_hold(&mut self.holds, old);
            }
            if let Some(h) = st.hold {
                *self.holds.entry(h).or_default() += 1;
            }
            st.registered_hold = st.hold;
        }
        self.keys
            .entry(key.clone())
            .or_default()
            .active
            .insert(window, st);
    }

    /// Removes the wake-ups and hold of a state that is going away.
    fn unregister(&mut self, key: &Key, window: Window, st: &mut WindowState<R::Contents>) {
        if let Some(t) = st.registered_event.take() {
            self.event_wakeups.remove(&(t, key.clone(), window));
        }
        if let Some(t) = st.registered_processing.take() {
            self.processing_wakeups.remove(&(t, key.clone(), window));
        }
        if let Some(h) = st.registered_hold.take() {
            release_hold(&mut self.holds, h);
        }
    }

    /// Remembers that the window's trigger finished, until the window is garbage-collected.
    fn close_window(&mut self, key: &Key, window: Window) {
        if window_is_expired(&window, self.allowed_lateness, self.input_watermark) {
            self.drop_key_if_empty(key);
            return;
        }
        self.keys
            .entry(key.clone())
            .or_default()
            .closed
            .insert(window);
        self.event_wakeups
            .insert((gc_time(&window, self.allowed_lateness), key.clone(), window));
    }

    fn drop_key_if_empty(&mut self, key: &Key) {
        if self
            .keys
            .get(key)
            .is_some_and(|k| k.active.is_empty() && k.closed.is_empty())
        {
            self.keys.remove(key);
        }
    }
}

/// Whether the end-of-window wake-up coincides with garbage collection (no allowed
/// lateness, or the global window): Beam then treats it as garbage collection only.
fn end_of_window_is_gc(window: &Window, allowed_lateness: Duration) -> bool {
    gc_time(window, allowed_lateness) == window.max_timestamp()
}

/// The order in which windows due at one watermark or processing-time advance fire: by
/// window end, window start, then key.
fn firing_order(due: BTreeSet<(Timestamp, Key, Window)>) -> Vec<(Key, Window)> {
    let mut order: Vec<(Timestamp, Timestamp, Key)> = due
        .into_iter()
        .map(|(_, k, w)| (w.end, w.start, k))
        .collect();
    order.sort();
    order.dedup();
    order
        .into_iter()
        .map(|(end, start, key)| (key, Window::new(start, end)))
        .collect()
}

fn release_hold(holds: &mut BTreeMap<Timestamp, usize>, hold: Timestamp) {
    if let Some(n) = holds.get_mut(&hold) {
        *n -= 1;
        if *n == 0 {
            holds.remove(&hold);
        }
    }
}

/// The checkpoint form of one key's windows (see [`ReduceRunner::snapshot`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeySnapshot<C> {
    /// The key-column values.
    pub key: Vec<serde_json::Value>,
    /// Its active windows.
    pub active: Vec<WindowSnapshot<C>>,
    /// Windows whose trigger finished, kept until garbage collection.
    #[serde(default)]
    pub closed: Vec<Window>,
}

/// The checkpoint form of one active window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WindowSnapshot<C> {
    /// The window.
    pub window: Window,
    /// Its buffered contents.
    pub contents: C,
    /// Its trigger's state.
    pub trigger: TriggerState,
    /// The last pane emitted.
    pub last_pane: Option<PaneInfo>,
    /// Elements since the last firing.
    pub new_elements: u64,
    /// Their (earliest, latest) timestamp.
    pub new_span: Option<(Timestamp, Timestamp)>,
    /// The output watermark hold of the pending pane.
    pub hold: Option<Timestamp>,
    /// Whether the end-of-window wake-up is still to come.
    pub end_of_window_pending: bool,
    /// The registered event-time wake-up.
    pub event_wakeup: Option<Timestamp>,
    /// The registered processing-time wake-up.
    pub processing_wakeup: Option<Timestamp>,
}

impl<R: ReduceFn> ReduceRunner<R> {
    /// Every key's windows, triggers, panes and wake-ups, for a checkpoint. Watermarks are
    /// not included (a restored runner starts from `MIN`, as Flink's operators do).
    pub fn snapshot(&self) -> Vec<KeySnapshot<R::Contents>> {
        self.keys
            .iter()
            .map(|(key, kw)| KeySnapshot {
                key: key.values(),
                active: kw
                    .active
                    .iter()
                    .map(|(window, st)| WindowSnapshot {
                        window: *window,
                        contents: st.contents.clone(),
                        trigger: st.trigger.clone(),
                        last_pane: st.last_pane,
                        new_elements: st.new_elements,
                        new_span: st.new_span,
                        hold: st.hold,
                        end_of_window_pending: st.end_of_window_pending,
                        event_wakeup: st.registered_event,
                        processing_wakeup: st.registered_processing,
                    })
                    .collect(),
                closed: kw.closed.iter().copied().collect(),
            })
            .collect()
    }

    /// Adds the keys of a snapshot (several snapshots may be restored into one runner when
    /// keys are redistributed), re-registering their wake-ups and holds.
    pub fn restore(&mut self, keys: Vec<KeySnapshot<R::Contents>>) {
        for snapshot in keys {
            let key = Key::new(&snapshot.key);
            let kw = self.keys.entry(key.clone()).or_default();
            for w in snapshot.active {
                if let Some(t) = w.event_wakeup {
                    self.event_wakeups.insert((t, key.clone(), w.window));
                }
                if let Some(t) = w.processing_wakeup {
                    self.processing_wakeups.insert((t, key.clone(), w.window));
                }
                if let Some(h) = w.hold {
                    *self.holds.entry(h).or_default() += 1;
                }
                kw.active.insert(
                    w.window,
                    WindowState {
                        contents: w.contents,
                        trigger: w.trigger,
                        last_pane: w.last_pane,
                        new_elements: w.new_elements,
                        new_span: w.new_span,
                        hold: w.hold,
                        end_of_window_pending: w.end_of_window_pending,
                        registered_event: w.event_wakeup,
                        registered_processing: w.processing_wakeup,
                        registered_hold: w.hold,
                    },
                );
            }
            for window in snapshot.closed {
                kw.closed.insert(window);
                self.event_wakeups.insert((
                    gc_time(&window, self.allowed_lateness),
                    key.clone(),
                    window,
                ));
            }
        }
    }
}
