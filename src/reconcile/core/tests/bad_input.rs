//! Bad input never destroys: a reload with errors keeps every instance it lacks at its last
//! declaration, and a ten that starts on broken files removes nothing it adopted.

use super::*;
use crate::observed::ObservedInstance;
use crate::reconcile::inherit::{Inheritance, Inherited};
use crate::supervisor::messages::Adoption;

/// A reload whose files have an error, declaring the instances `ids` of web.
fn reloaded_with_error(ids: &[&str]) -> Event {
    Event::Reloaded(Box::new(Reload {
        desired: Some(desired(&config("", ids))),
        files: BTreeMap::new(),
        frozen: Vec::new(),
        diagnostics: vec![Diagnostic::in_file(
            Path::new("instances/web/d.toml"),
            "instance file is not UTF-8 text",
        )],
    }))
}

fn reload(core: &mut Core, event: Event, t0: Instant) -> Vec<Effect> {
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    core.handle(event, t0)
}

#[test]
fn an_instance_missing_from_files_with_errors_is_frozen_not_removed() {
    let t0 = Instant::now();
    let mut core = started(&config("", &["a", "b", "c", "d"]), t0);
    let before = Arc::clone(&core.desired().instances[&key("web:d")]);
    // d's file became unreadable: the reload lacks d and has an error.
    let effects = reload(&mut core, reloaded_with_error(&["a", "b", "c"]), t0);
    assert!(orders(&effects).is_empty(), "{effects:?}");
    let status = core.status();
    assert!(!status.valid);
    assert_eq!(status.frozen, [key("web:d")]);
    assert_eq!(status.instances, 4);
    assert!(Arc::ptr_eq(
        &core.desired().instances[&key("web:d")],
        &before
    ));
    assert!(
        core.plan().0.is_empty(),
        "nothing to do: d keeps its declaration"
    );
    assert!(
        notes(&effects)
            .iter()
            .any(|note| note.contains("1 instance(s) keep their last valid declaration")),
        "{effects:?}"
    );
    // Later passes keep it too.
    let effects = core.handle(Event::Tick, t0 + RESYNC);
    let effects = [
        effects,
        core.handle(reloaded_with_error(&["a", "b", "c"]), t0),
    ]
    .concat();
    assert!(orders(&effects).is_empty(), "{effects:?}");
    // A valid state that no longer declares d removes it.
    let effects = reload(&mut core, reloaded(&config("", &["a", "b", "c"])), t0);
    assert_eq!(orders(&effects), ["web:d remove"]);
    assert!(core.status().frozen.is_empty());
}

#[test]
fn a_ten_started_on_broken_files_removes_nothing_it_adopted() {
    let t0 = Instant::now();
    let text = config("", &["a"]);
    let mut core = Core::new(
        "/srv/app/tenement.toml".into(),
        desired(&text),
        BTreeMap::new(),
        vec![Diagnostic::in_file(
            Path::new("instances/web/x.toml"),
            "instance file is not UTF-8 text",
        )],
        Some("boot".into()),
        t0,
    );
    // x ran under the ten before; its file is broken now, so it is not declared.
    let spec = Arc::clone(&core.desired().instances[&key("web:a")]);
    let mut observed = ObservedInstance::new(Phase::Running, spec.shared_fields());
    observed.pid = Some(4242);
    observed.port = Some(30007);
    let inheritance = Inheritance {
        processes: vec![Inherited {
            key: key("web:x"),
            port: 30007,
            adoption: Adoption {
                pid: 4242,
                start_time: 1,
                started_at_unix: 1,
                restart_times_unix: Vec::new(),
                name: None,
                sandboxed: false,
            },
            observed,
        }],
        generation: 7,
        ..Inheritance::default()
    };
    core.handle(Event::TakeOver(Box::new(inheritance)), t0);
    let effects = core.handle(Event::Tick, t0);
    assert_eq!(spawned(&effects), ["web:a"]);
    assert!(orders(&effects).is_empty(), "{effects:?}");
    assert!(
        core.plan()
            .0
            .changes
            .iter()
            .all(|change| change.action != Action::Destroy)
    );
    // Fixed, and x is not declared: now it goes.
    let effects = reload(&mut core, reloaded(&text), t0);
    assert_eq!(orders(&effects), ["web:x remove"]);
}
