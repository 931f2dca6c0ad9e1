//! Timers per key, window and name, ordered for firing.

use super::{event_timer_due, processing_timer_due};
use crate::reduce::Key;
use std::collections::{BTreeMap, BTreeSet};
use weir_model::time::Timestamp;
use weir_model::udf::TimeDomain;
use weir_model::window::Window;

/// A set timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEntry {
    /// When it fires (event or processing time, per `domain`).
    pub at: Timestamp,
    /// Its time domain.
    pub domain: TimeDomain,
}

/// A timer taken from the queue to fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringTimer {
    /// The key.
    pub key: Key,
    /// The window.
    pub window: Window,
    /// The timer's name.
    pub name: String,
    /// The timer.
    pub entry: TimerEntry,
}

type TimerId = (Key, Window, String);

/// Every timer of one stateful transform. Setting a timer that is already set moves it
/// (timers are deduplicated per key, window and name).
#[derive(Debug, Clone, Default)]
pub struct TimerQueue {
    timers: BTreeMap<TimerId, TimerEntry>,
    event: BTreeSet<(Timestamp, Key, Window, String)>,
    processing: BTreeSet<(Timestamp, Key, Window, String)>,
}

impl TimerQueue {
    /// Sets (or moves) the timer `name` of (key, window).
    pub fn set(&mut self, key: &Key, window: Window, name: &str, entry: TimerEntry) {
        self.delete(key, window, name);
        let index = (entry.at, key.clone(), window, name.to_string());
        match entry.domain {
            TimeDomain::EventTime => self.event.insert(index),
            TimeDomain::ProcessingTime => self.processing.insert(index),
        };
        self.timers
            .insert((key.clone(), window, name.to_string()), entry);
    }

    /// Deletes the timer `name` of (key, window), if set.
    pub fn delete(&mut self, key: &Key, window: Window, name: &str) {
        let id = (key.clone(), window, name.to_string());
        if let Some(old) = self.timers.remove(&id) {
            let (k, w, n) = id;
            let index = (old.at, k, w, n);
            match old.domain {
                TimeDomain::EventTime => self.event.remove(&index),
                TimeDomain::ProcessingTime => self.processing.remove(&index),
            };
        }
    }

    /// Every set timer: key, window, name and entry, in key, window and name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, Window, &str, TimerEntry)> {
        self.timers
            .iter()
            .map(|((k, w, n), e)| (k, *w, n.as_str(), *e))
    }

    /// The timer `name` of (key, window), if set.
    pub fn get(&self, key: &Key, window: Window, name: &str) -> Option<TimerEntry> {
        self.timers
            .get(&(key.clone(), window, name.to_string()))
            .copied()
    }

    /// Deletes every timer of (key, window).
    pub fn delete_window(&mut self, key: &Key, window: Window) {
        let names: Vec<String> = self
            .timers
            .range((key.clone(), window, String::new())..)
            .take_while(|((k, w, _), _)| k == key && *w == window)
            .map(|((_, _, n), _)| n.clone())
            .collect();
        for n in names {
            self.delete(key, window, &n);
        }
    }

    /// The earliest event-time timer, if any: (time, key, window, name).
    pub fn next_event(&self) -> Option<&(Timestamp, Key, Window, String)> {
        self.event.first()
    }

    /// Removes and returns the earliest event-time timer due at `input_watermark`; ties in
    /// time go by key, then window, then name.
    pub fn pop_due_event(&mut self, input_watermark: Timestamp) -> Option<FiringTimer> {
        let (at, ..) = self.event.first()?;
        if !event_timer_due(*at, input_watermark) {
            return None;
        }
        self.pop_first(TimeDomain::EventTime)
    }

    /// Removes and returns the earliest processing-time timer due at `processing_time`.
    pub fn pop_due_processing(&mut self, processing_time: Timestamp) -> Option<FiringTimer> {
        let (at, ..) = self.processing.first()?;
        if !processing_timer_due(*at, processing_time) {
            return None;
        }
        self.pop_first(TimeDomain::ProcessingTime)
    }

    /// The earliest processing-time timer's time.
    pub fn next_processing_time(&self) -> Option<Timestamp> {
        self.processing.first().map(|(t, ..)| *t)
    }

    /// Number of timers set.
    pub fn len(&self) -> usize {
        self.timers.len()
    }

    /// Whether no timer is set.
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    fn pop_first(&mut self, domain: TimeDomain) -> Option<FiringTimer> {
        let (_, key, window, name) = match domain {
            TimeDomain::EventTime => self.event.first()?.clone(),
            TimeDomain::ProcessingTime => self.processing.first()?.clone(),
        };
        let entry = self.get(&key, window, &name)?;
        self.delete(&key, window, &name);
        Some(FiringTimer {
            key,
            window,
            name,
            entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(at: Timestamp) -> TimerEntry {
        TimerEntry {
            at,
            domain: TimeDomain::EventTime,
        }
    }

    #[test]
    fn timers_fire_in_time_then_key_order_and_setting_again_moves_them() {
        let mut q = TimerQueue::default();
        let (a, b) = (Key::new(&[json!("a")]), Key::new(&[json!("b")]));
        let w = Window::GLOBAL;
        q.set(&b, w, "t", event(5));
        q.set(&a, w, "t", event(5));
        q.set(&a, w, "u", event(1));
        q.set(&a, w, "u", event(7));
        assert_eq!(q.len(), 3);
        assert!(q.pop_due_event(5).is_none());
        let first = q.pop_due_event(6).unwrap();
        assert_eq!((first.key.clone(), first.name.as_str()), (a.clone(), "t"));
        assert_eq!(q.pop_due_event(6).unwrap().key, b);
        assert!(q.pop_due_event(6).is_none());
        assert_eq!(q.pop_due_event(8).unwrap().entry.at, 7);
        assert!(q.is_empty());
    }
}
