//! Bad input never destroys a tenant: each way of breaking the files under a running tenant
//! (pid recorded before) leaves it running with the same pid and its data directory intact
//! (`storage_persist = false`, so a destroy would delete it), `ten ps` shows the problem, and
//! after the fix the same process runs on. The rule: only a *valid* desired state that no
//! longer declares an instance removes it.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use support::server::{TestServer, alive, backend_service, project, stderr, within};
use ten::observed::Phase;

const IDS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// One way to break the files, and its fix.
struct Case {
    name: &'static str,
    break_it: fn(&Path),
    fix: fn(&Path),
}

fn instance_file(dir: &Path, id: &str) -> std::path::PathBuf {
    dir.join(format!("instances/notes/{id}.toml"))
}

fn config_text() -> String {
    backend_service("notes", "storage_persist = false")
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a non-UTF-8 byte in alice's file",
            break_it: |dir| fs::write(instance_file(dir, "alice"), b"# \xff\n").unwrap(),
            fix: |dir| fs::write(instance_file(dir, "alice"), "# a tenant\n").unwrap(),
        },
        Case {
            name: "alice's file mode 000",
            break_it: |dir| set_mode(&instance_file(dir, "alice"), 0o000),
            fix: |dir| set_mode(&instance_file(dir, "alice"), 0o644),
        },
        Case {
            name: "the service directory without read permission",
            break_it: |dir| set_mode(&dir.join("instances/notes"), 0o000),
            fix: |dir| set_mode(&dir.join("instances/notes"), 0o755),
        },
        Case {
            name: "alice's file replaced by a directory",
            break_it: |dir| {
                fs::remove_file(instance_file(dir, "alice")).unwrap();
                fs::create_dir(instance_file(dir, "alice")).unwrap();
            },
            fix: |dir| {
                fs::remove_dir(instance_file(dir, "alice")).unwrap();
                fs::write(instance_file(dir, "alice"), "# a tenant\n").unwrap();
            },
        },
        Case {
            name: "an empty tenement.toml",
            break_it: |dir| {
                let path = dir.join("tenement.toml");
                fs::rename(&path, dir.join("tenement.toml.saved")).unwrap();
                fs::write(&path, "").unwrap();
            },
            fix: restore_config,
        },
        Case {
            name: "the service renamed",
            break_it: |dir| {
                let path = dir.join("tenement.toml");
                let text = fs::read_to_string(&path).unwrap();
                fs::copy(&path, dir.join("tenement.toml.saved")).unwrap();
                fs::write(&path, text.replace("[service.notes]", "[service.notebook]")).unwrap();
            },
            fix: restore_config,
        },
        Case {
            name: "instances/ replaced by a plain file",
            break_it: |dir| {
                fs::rename(dir.join("instances"), dir.join("instances.saved")).unwrap();
                fs::write(dir.join("instances"), "not a directory\n").unwrap();
            },
            fix: |dir| {
                fs::remove_file(dir.join("instances")).unwrap();
                fs::rename(dir.join("instances.saved"), dir.join("instances")).unwrap();
            },
        },
        Case {
            name: "a service-name typo in one of 4 files",
            break_it: |dir| {
                fs::create_dir_all(dir.join("instances/ntoes")).unwrap();
                fs::rename(
                    instance_file(dir, "dave"),
                    dir.join("instances/ntoes/dave.toml"),
                )
                .unwrap();
            },
            fix: |dir| {
                fs::rename(
                    dir.join("instances/ntoes/dave.toml"),
                    instance_file(dir, "dave"),
                )
                .unwrap();
                fs::remove_dir(dir.join("instances/ntoes")).unwrap();
            },
        },
    ]
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn restore_config(dir: &Path) {
    fs::rename(dir.join("tenement.toml.saved"), dir.join("tenement.toml")).unwrap();
}

/// A root ten reads anything; without these two capabilities it meets permissions as any
/// user does (the mode-000 cases).
const WITHOUT_DAC: [&str; 6] = [
    "setpriv",
    "--bounding-set",
    "-dac_override,-dac_read_search",
    "--inh-caps",
    "-dac_override,-dac_read_search",
    "--",
];

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What `ten ps` prints on stderr.
fn ps_warnings(server: &TestServer) -> String {
    let output = server.ten(&["ps"]);
    assert!(output.status.success(), "{}", stderr(&output));
    stderr(&output)
}

#[test]
fn no_way_of_breaking_the_files_destroys_a_running_tenant() {
    let files: Vec<(String, &str)> = IDS
        .iter()
        .map(|id| (format!("instances/notes/{id}.toml"), "# a tenant\n"))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let project = project("", &config_text(), &files);
    let dir = project.path();
    let server = if is_root() {
        TestServer::start_wrapped(dir, &WITHOUT_DAC)
    } else {
        TestServer::start(dir)
    };
    let pids: Vec<u32> = IDS
        .iter()
        .map(|id| server.wait_running(&format!("notes:{id}")))
        .collect();
    let marker = dir.join("tenement-data/notes/alice/precious.db");
    fs::write(&marker, "data").unwrap();
    for case in cases() {
        (case.break_it)(dir);
        // ten saw the problem: `ten ps` says so.
        let mut warnings = String::new();
        let noticed = within(Duration::from_secs(10), || {
            warnings = ps_warnings(&server);
            warnings.contains("errors")
        });
        assert!(
            noticed,
            "{}: ten ps shows no problem: {warnings}\n{}",
            case.name,
            server.log()
        );
        // Give a wrong destroy time to happen: two more passes.
        std::thread::sleep(Duration::from_millis(1500));
        for (id, pid) in IDS.iter().zip(&pids) {
            assert!(
                alive(*pid),
                "{}: notes:{id} (pid {pid}) was stopped\n{}",
                case.name,
                server.log()
            );
        }
        assert!(marker.exists(), "{}: alice's data is gone", case.name);
        (case.fix)(dir);
        let mut warnings = String::new();
        let fixed = within(Duration::from_secs(10), || {
            warnings = ps_warnings(&server);
            warnings.is_empty()
        });
        assert!(
            fixed,
            "{}: still warned after the fix: {warnings}",
            case.name
        );
        let views = server.ps();
        for (id, pid) in IDS.iter().zip(&pids) {
            let view = views
                .iter()
                .find(|view| view.instance.to_string() == format!("notes:{id}"))
                .unwrap_or_else(|| panic!("{}: notes:{id} is gone: {views:#?}", case.name));
            assert_eq!(
                (view.pid, view.phase),
                (Some(*pid), Phase::Running),
                "{}: notes:{id} after the fix",
                case.name
            );
        }
    }
    assert_eq!(fs::read_to_string(&marker).unwrap(), "data");
}
