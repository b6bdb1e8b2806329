//! The actor carrying out the core's effects with real instance tasks on the fake runtime: a
//! ten that starts after another one adopts its live process, lets its sleeper sleep, forgets
//! the table entries of processes that are gone, starts what never ran, and reports usage;
//! a reload lowers the file watcher's flag (`watch::Unread`).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::*;
use crate::config::parse_config;
use crate::desired::resolve;
use crate::events::EventLog;
use crate::observed::{ObservedInstance, Phase, Usage};
use crate::reconcile::inherit::{Inheritance, Inherited};
use crate::reconcile::{Call, Snapshot};
use crate::runtime::fake::FakeRuntime;
use crate::runtime::logs::LogHub;
use crate::runtime::ports::PortAllocator;
use crate::runtime::table::ProcessEntry;
use crate::supervisor::launch::BaseEnv;
use crate::supervisor::messages::Adoption;

fn key(text: &str) -> InstanceKey {
    InstanceKey::parse(text).unwrap()
}

/// What the actor was asked about its instances, until `check` holds (10 s at most).
async fn snapshot_until(
    messages: &mpsc::Sender<Message>,
    check: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (reply, answer) = oneshot::channel();
        messages
            .send(Message::Call(Call::Instances(reply)))
            .await
            .unwrap();
        let snapshot = answer.await.unwrap();
        if check(&snapshot) || Instant::now() > deadline {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn phase(snapshot: &Snapshot, id: &str) -> Option<(Phase, Option<u32>)> {
    let instance = snapshot.observed.instances.get(&key(id))?;
    Some((instance.phase, instance.pid))
}

#[tokio::test]
async fn a_new_ten_adopts_what_runs_sleeps_on_forgets_the_gone_and_starts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // web starts when declared; lazy (b) on its first request, so it sleeps on.
    let text = "[service.web]\ncommand = \"./app\"\n[service.lazy]\ncommand = \"./app\"\nstart = \"on-demand\"\n\
                [instances]\nweb = [\"a\", \"c\"]\nlazy = [\"b\"]\n";
    let mut diagnostics = Vec::new();
    let config = parse_config(
        &dir.path().join("tenement.toml"),
        text.into(),
        &mut diagnostics,
    )
    .config
    .unwrap();
    let desired = resolve(config, &[], &mut diagnostics);
    std::fs::write(dir.path().join("tenement.toml"), text).unwrap();
    let runtime = FakeRuntime::new();
    runtime.leave_running(&key("web:a"), 777, 5);
    runtime.set_usage(Usage {
        memory_bytes: Some(42 << 20),
        ..Usage::default()
    });
    let (changed_sender, changed) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        runtime: Arc::new(runtime.clone()),
        logs: LogHub::new(dir.path().join("logs")),
        events: EventLog::default(),
        ports: Arc::new(Mutex::new(PortAllocator::new((25000, 25099)))),
        base_env: BaseEnv::from_process(),
        startup_permits: Arc::new(Semaphore::new(8)),
        admission: Arc::default(),
        tasks: tokio::runtime::Handle::current(),
        changed: changed_sender,
    });
    // What the last ten ran them with: the spec they are declared with now.
    let spec = desired.instances[&key("web:a")].shared_fields();
    let unread = crate::watch::Unread::default();
    let published = Arc::new(Mutex::new(0));
    let count = Arc::clone(&published);
    let mut reconciler = Reconciler::new(ReconcilerParts {
        config_path: dir.path().join("tenement.toml"),
        data_dir: dir.path().join("data"),
        shared: Arc::clone(&shared),
        desired,
        files: BTreeMap::new(),
        diagnostics: Vec::new(),
        changed,
        publish: Box::new(move |_, gate| {
            // Every instance with a task has a gate to route to.
            assert!(gate(&key("web:a")).is_some());
            *count.lock().unwrap() += 1;
        }),
        unread: unread.clone(),
    });
    let mut adopted = ObservedInstance::new(Phase::Running, Arc::clone(&spec));
    adopted.pid = Some(777);
    adopted.port = Some(25007);
    let mut asleep = ObservedInstance::new(Phase::Sleeping, Arc::clone(&spec));
    asleep.port = Some(25008);
    let gone = ProcessEntry {
        instance: key("web:c"),
        pid: 555,
        start_time: 1,
        boot_id: "boot".into(),
        port: 25009,
        started_at_unix: 1,
        spec,
        name: None,
        sandboxed: false,
    };
    reconciler
        .take_over(Inheritance {
            processes: vec![Inherited {
                key: key("web:a"),
                port: 25007,
                adoption: Adoption {
                    pid: 777,
                    start_time: 5,
                    started_at_unix: 1,
                    restart_times_unix: Vec::new(),
                    name: None,
                    sandboxed: false,
                },
                observed: adopted,
            }],
            sleeping: vec![(key("lazy:b"), asleep)],
            stale: vec![gone],
            generation: 7,
            ..Inheritance::default()
        })
        .await;
    let (messages, receiver) = mpsc::channel(16);
    let running = tokio::spawn(reconciler.run(receiver));

    let snapshot = snapshot_until(&messages, |snapshot| {
        matches!(phase(snapshot, "web:c"), Some((Phase::Running, Some(_))))
            && snapshot.usage.contains_key(&key("web:a"))
    })
    .await;
    assert_eq!(
        phase(&snapshot, "web:a"),
        Some((Phase::Running, Some(777))),
        "adopted as it runs"
    );
    assert_eq!(phase(&snapshot, "lazy:b"), Some((Phase::Sleeping, None)));
    let (_, Some(started)) = phase(&snapshot, "web:c").unwrap() else {
        panic!("web:c has no process")
    };
    assert_ne!(started, 555, "a new process, not the gone one");
    assert_eq!(snapshot.observed.instances[&key("web:a")].port, Some(25007));
    assert_eq!(
        snapshot.usage[&key("web:a")].memory_bytes,
        Some(42 << 20),
        "usage is reported for what runs"
    );
    assert!(snapshot.observed.generation > 7);
    assert!(runtime.forgotten().contains(&555));
    assert!(*published.lock().unwrap() >= 1);
    assert_eq!(runtime.launches().len(), 1, "only web:c was started");

    // The watcher's news: a reload lowers its flag, so the next change is told again.
    assert!(unread.note(), "nothing was noted yet");
    assert!(!unread.note(), "told once until a reload");
    messages.send(Message::FilesChanged).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !unread.note() {
        assert!(
            Instant::now() < deadline,
            "the reload never lowered the flag"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let (done, finished) = oneshot::channel();
    messages.send(Message::Shutdown { done }).await.unwrap();
    finished.await.unwrap();
    running.await.unwrap();
    assert_eq!(runtime.pid_of(&key("web:a")), None, "stopped at exit");
}
