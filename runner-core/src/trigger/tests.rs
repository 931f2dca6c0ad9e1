use super::*;
use weir_model::time::Duration;

fn cx(wm: Timestamp, pt: Timestamp) -> TriggerContext {
    TriggerContext {
        window: Window::new(0, 10),
        input_watermark: wm,
        processing_time: pt,
        merging: false,
    }
}

fn count(n: u64) -> Trigger {
    Trigger::AfterCount { count: n }
}

#[test]
fn count_trigger_fires_once_then_finishes() {
    let mut t = TriggerState::new(&count(2));
    let c = cx(0, 0);
    t.on_element(&c);
    assert!(!t.should_fire(&c));
    t.on_element(&c);
    assert!(t.should_fire(&c));
    t.on_fire(&c);
    assert!(t.is_finished());
}

#[test]
fn repeatedly_resets_its_sub_trigger() {
    let mut t = TriggerState::new(&Trigger::Repeatedly {
        trigger: Box::new(count(2)),
    });
    let c = cx(0, 0);
    for _ in 0..2 {
        t.on_element(&c);
    }
    assert!(t.should_fire(&c));
    t.on_fire(&c);
    assert!(!t.is_finished());
    t.on_element(&c);
    assert!(!t.should_fire(&c));
    t.on_element(&c);
    assert!(t.should_fire(&c));
}

#[test]
fn default_trigger_fires_at_and_after_the_end_of_window_and_never_finishes() {
    let mut t = TriggerState::new(&Trigger::Default);
    assert!(!t.should_fire(&cx(9, 0)));
    assert!(t.should_fire(&cx(10, 0)));
    t.on_fire(&cx(10, 0));
    assert!(!t.is_finished());
    assert!(t.should_fire(&cx(11, 0)));
}

#[test]
fn after_watermark_with_early_and_late_firings() {
    let spec = Trigger::AfterWatermark {
        early: Some(Box::new(count(1))),
        late: Some(Box::new(count(1))),
    };
    let mut t = TriggerState::new(&spec);
    let early = cx(5, 0);
    t.on_element(&early);
    assert!(t.should_fire(&early));
    t.on_fire(&early);
    assert!(
        !t.should_fire(&early),
        "the early trigger repeats but its count was cleared"
    );
    let on_time = cx(10, 0);
    assert!(t.should_fire(&on_time));
    t.on_fire(&on_time);
    assert!(!t.is_finished());
    assert!(
        !t.should_fire(&on_time),
        "the late trigger waits for a late element"
    );
    t.on_element(&on_time);
    assert!(t.should_fire(&on_time));
    t.on_fire(&on_time);
    assert!(!t.is_finished());
}

#[test]
fn after_watermark_without_late_firings_finishes_on_time() {
    let mut t = TriggerState::new(&Trigger::AfterWatermark {
        early: None,
        late: None,
    });
    t.on_element(&cx(0, 0));
    assert!(t.should_fire(&cx(10, 0)));
    t.on_fire(&cx(10, 0));
    assert!(t.is_finished());
}

#[test]
fn processing_time_trigger_waits_from_the_first_element() {
    let mut t = TriggerState::new(&Trigger::AfterProcessingTime {
        delay: Duration(100),
    });
    t.on_element(&cx(0, 50));
    t.on_element(&cx(0, 120));
    assert_eq!(t.next_processing_time(120), Some(150));
    assert_eq!(t.next_processing_time(150), None);
    assert!(!t.should_fire(&cx(0, 149)));
    assert!(t.should_fire(&cx(0, 150)));
    t.on_fire(&cx(0, 150));
    assert!(t.is_finished());
    assert_eq!(t.next_processing_time(0), None);
}

#[test]
fn after_each_runs_its_sub_triggers_in_turn() {
    let mut t = TriggerState::new(&Trigger::AfterEach {
        triggers: vec![count(1), count(2)],
    });
    let c = cx(0, 0);
    t.on_element(&c);
    assert!(t.should_fire(&c));
    t.on_fire(&c);
    assert!(!t.is_finished());
    t.on_element(&c);
    assert!(!t.should_fire(&c));
    t.on_element(&c);
    assert!(t.should_fire(&c));
    t.on_fire(&c);
    assert!(t.is_finished());
}

#[test]
fn or_finally_finishes_when_until_fires() {
    let spec = Trigger::OrFinally {
        main: Box::new(Trigger::Repeatedly {
            trigger: Box::new(count(1)),
        }),
        until: Box::new(count(3)),
    };
    let mut t = TriggerState::new(&spec);
    let c = cx(0, 0);
    for i in 1..=3 {
        t.on_element(&c);
        assert!(t.should_fire(&c));
        t.on_fire(&c);
        assert_eq!(t.is_finished(), i == 3);
    }
}

#[test]
fn after_all_needs_every_sub_trigger_and_after_first_any() {
    let c = cx(0, 0);
    let mut all = TriggerState::new(&Trigger::AfterAll {
        triggers: vec![count(1), count(2)],
    });
    all.on_element(&c);
    assert!(!all.should_fire(&c));
    all.on_element(&c);
    assert!(all.should_fire(&c));
    let mut first = TriggerState::new(&Trigger::AfterFirst {
        triggers: vec![count(1), count(2)],
    });
    first.on_element(&c);
    assert!(first.should_fire(&c));
    first.on_fire(&c);
    assert!(first.is_finished());
}

#[test]
fn merged_counts_add_up_and_a_finished_part_finishes_the_merge() {
    let c = TriggerContext {
        merging: true,
        ..cx(0, 0)
    };
    let mut a = TriggerState::new(&count(3));
    let mut b = TriggerState::new(&count(3));
    a.on_element(&c);
    b.on_element(&c);
    b.on_element(&c);
    let m = TriggerState::merged(&[&a, &b], None, &c);
    assert!(m.should_fire(&c));
    assert!(!m.is_finished());
    b.on_element(&c);
    b.on_fire(&c);
    let m = TriggerState::merged(&[&a, &b], None, &c);
    assert!(m.is_finished());
}

#[test]
fn merged_end_of_window_trigger_reopens_when_the_merged_end_is_ahead() {
    let spec = Trigger::AfterWatermark {
        early: None,
        late: None,
    };
    let mut a = TriggerState::new(&spec);
    a.on_fire(&cx(10, 0));
    let merged_cx = TriggerContext {
        window: Window::new(0, 20),
        input_watermark: 10,
        processing_time: 0,
        merging: true,
    };
    assert!(!TriggerState::merged(&[&a], None, &merged_cx).is_finished());
    let past = TriggerContext {
        input_watermark: 25,
        ..merged_cx
    };
    assert!(TriggerState::merged(&[&a], None, &past).is_finished());
}

#[test]
fn trigger_state_serializes_to_json() {
    let spec = Trigger::OrFinally {
        main: Box::new(Trigger::AfterWatermark {
            early: Some(Box::new(count(2))),
            late: None,
        }),
        until: Box::new(Trigger::AfterProcessingTime { delay: Duration(5) }),
    };
    let mut t = TriggerState::new(&spec);
    t.on_element(&cx(0, 1));
    let json = serde_json::to_string(&t).unwrap();
    let back: TriggerState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
}
