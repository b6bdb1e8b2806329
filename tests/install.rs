//! `ten install` / `ten uninstall` with the real binary: the unit it writes, refusals, and that
//! the unit's `ExecStart=` line — read back the way systemd reads it — really runs `ten serve`
//! for the project. No systemd needed: units go to a temporary `--unit-dir`, which systemd
//! does not read, so no test ever calls `systemctl`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use support::http::Request;
use support::server::{backend_service, port_range, stderr, stdout, wait_gone};
use ten::api::types::InstanceView;
use ten::observed::Phase;

/// A project whose directory and data directory have characters systemd treats specially.
struct Project {
    root: tempfile::TempDir,
    /// `ROOT/my project`, with tenement.toml (service `web` = the test backend, `web:alice`
    /// declared) and an empty `sub/` directory.
    dir: PathBuf,
    /// `ROOT/data $HOME 100%` (not created).
    data: PathBuf,
    /// `ROOT/units` (created).
    units: PathBuf,
}

fn project(settings: &str) -> Project {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("my project");
    let (low, high) = port_range();
    support::write_file(
        &dir.join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [{low}, {high}]\nhealth_check_interval = 1\n{settings}\n\n{}\n[instances]\nweb = [\"alice\"]\n",
            backend_service("web", "")
        ),
    );
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let units = root.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    Project {
        data: root.path().join("data $HOME 100%"),
        dir,
        units,
        root,
    }
}

impl Project {
    fn unit(&self, name: &str) -> PathBuf {
        self.units.join(format!("{name}.service"))
    }

    fn unit_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.unit(name)).unwrap()
    }
}

/// Runs ten in `cwd` with a clean CLI environment.
fn ten(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TENEMENT_CONFIG")
        .env_remove("TENEMENT_DATA_DIR")
        .env_remove("TENEMENT_PORT")
        .env_remove("TENEMENT_SERVER")
        .env_remove("TENEMENT_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run ten")
}

fn ok(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

fn failed(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit 1; stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

fn unit_dir_arg(project: &Project) -> String {
    project.units.to_str().unwrap().to_string()
}

/// The value of `Key=` in a unit (the first one).
fn setting<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in\n{unit}"))
}

/// Splits a command line the way systemd does (systemd.syntax(7), systemd.service(5)): words
/// separated by whitespace, double or single quotes around a whole word, C escapes, `%%` for
/// `%`, `$$` for `$`. Any other specifier or variable would be expanded by systemd, so it
/// fails the test.
fn split_exec_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return words;
        };
        let quote = matches!(first, '"' | '\'').then(|| chars.next().unwrap());
        let mut word = String::new();
        loop {
            let Some(c) = chars.next() else {
                assert!(quote.is_none(), "unterminated quote in {line}");
                break;
            };
            match c {
                c if Some(c) == quote => {
                    assert!(
                        chars.peek().is_none_or(|c| c.is_whitespace()),
                        "a closing quote must end its word: {line}"
                    );
                    break;
                }
                c if quote.is_none() && c.is_whitespace() => break,
                '\\' => word.push(unescape(&mut chars, line)),
                '%' | '$' => {
                    assert_eq!(chars.next(), Some(c), "unescaped {c} in {line}");
                    word.push(c);
                }
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

/// The character after a `\` (C escapes, as systemd knows them).
fn unescape(chars: &mut impl Iterator<Item = char>, line: &str) -> char {
    match chars.next() {
        Some('\\') => '\\',
        Some('"') => '"',
        Some('\'') => '\'',
        Some('n') => '\n',
        Some('t') => '\t',
        Some('r') => '\r',
        Some('s') => ' ',
        Some('x') => {
            let hex: String = chars.take(2).collect();
            char::from(u8::from_str_radix(&hex, 16).unwrap())
        }
        other => panic!("unknown escape \\{other:?} in {line}"),
    }
}

fn exe() -> String {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_ten"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn install_writes_a_unit_that_runs_serve_for_the_nearest_config() {
    let project = project("");
    let units = unit_dir_arg(&project);
    let data = project.data.to_str().unwrap();
    // Run from a subdirectory: the config is found by walking up, like every command does.
    let output = ten(
        &project.dir.join("sub"),
        &[
            "install",
            "--unit-dir",
            &units,
            "--no-start",
            "--data-dir",
            data,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--domain",
            "example.com",
        ],
    );
    ok(&output);
    let report = stdout(&output);
    assert!(report.contains("Wrote "), "{report}");
    assert!(
        report.contains("systemctl enable --now ten.service"),
        "{report}"
    );
    assert!(
        report.contains("ten uninstall --name ten --unit-dir"),
        "{report}"
    );

    let unit = project.unit_text("ten");
    let config = project.dir.join("tenement.toml");
    let config = config.to_str().unwrap();
    assert!(
        unit.starts_with(&format!("# Written by `ten install` for {config}.\n")),
        "{unit}"
    );
    assert!(unit.contains("# Remove it with: ten uninstall --name ten --unit-dir "));
    let exec_start = setting(&unit, "ExecStart");
    assert!(
        exec_start.contains(&format!("--config \"{config}\"")),
        "spaces are quoted: {exec_start}"
    );
    assert!(
        exec_start.contains("data $$HOME 100%%\""),
        "$ and % are doubled: {exec_start}"
    );
    assert_eq!(
        split_exec_line(exec_start),
        [
            exe().as_str(),
            "serve",
            "--config",
            config,
            "--data-dir",
            data,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--domain",
            "example.com"
        ]
    );
    assert_eq!(
        setting(&unit, "WorkingDirectory"),
        project.dir.to_str().unwrap()
    );
    for (key, value) in [
        ("Type", "exec"),
        ("KillMode", "mixed"),
        // The backend's stop_timeout (2 s) plus ten's and systemd's margins.
        ("TimeoutStopSec", "17"),
        ("Restart", "on-failure"),
        ("RestartSec", "1"),
        ("LimitNOFILE", "1048576"),
        ("Delegate", "yes"),
        ("Environment", "TEN_LOG=info"),
        ("After", "network-online.target"),
        ("Wants", "network-online.target"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert_eq!(setting(&unit, key), value, "{key}= in\n{unit}");
    }
    assert!(!unit.contains("User="), "root by default:\n{unit}");
}

#[test]
fn keeping_tenants_on_exit_makes_systemd_stop_only_ten() {
    let project = project("keep_tenants_on_exit = true");
    let units = unit_dir_arg(&project);
    // Without --no-start: systemd does not read a temporary directory, so nothing is started
    // (and without systemd, nothing could be).
    let output = ten(
        &project.dir,
        &[
            "install",
            "--unit-dir",
            &units,
            "--name",
            "shop.service",
            "--user",
            "root",
        ],
    );
    ok(&output);
    assert!(
        stdout(&output).contains("nothing was enabled or started"),
        "{}",
        stdout(&output)
    );
    let unit = project.unit_text("shop");
    assert_eq!(setting(&unit, "KillMode"), "process", "{unit}");
    assert_eq!(setting(&unit, "User"), "root", "{unit}");
    assert!(unit.contains("ten uninstall --name shop"), "{unit}");
    assert!(
        !setting(&unit, "ExecStart").contains("--data-dir"),
        "no --data-dir unless given"
    );
}

#[test]
fn print_writes_nothing_and_changes_need_force() {
    let project = project("");
    let units = unit_dir_arg(&project);
    let install = |extra: &[&str]| {
        let mut args = vec!["install", "--unit-dir", &units, "--no-start"];
        args.extend_from_slice(extra);
        ten(&project.dir, &args)
    };

    let printed = install(&["--print"]);
    ok(&printed);
    assert!(stdout(&printed).starts_with("# Written by `ten install`"));
    assert_eq!(std::fs::read_dir(&project.units).unwrap().count(), 0);

    ok(&install(&[]));
    let written = project.unit_text("ten");
    assert_eq!(
        stdout(&printed),
        written,
        "--print shows what install writes"
    );

    let again = install(&[]);
    ok(&again);
    assert!(stdout(&again).contains("unchanged"), "{}", stdout(&again));

    let different = install(&["--port", "9999"]);
    failed(&different);
    let message = stderr(&different);
    assert!(message.contains("differs"), "{message}");
    assert!(message.contains("--force"), "{message}");
    assert!(
        message.contains("+ExecStart=") && message.contains("--port 9999"),
        "{message}"
    );
    assert_eq!(project.unit_text("ten"), written, "nothing written");

    let forced = install(&["--port", "9999", "--force", "--json"]);
    ok(&forced);
    let report: serde_json::Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert_eq!(report["written"], true);
    assert_eq!(report["unit"], "ten.service");
    assert_eq!(
        report["exec_start"].as_array().unwrap().last().unwrap(),
        "9999"
    );
    assert!(setting(&project.unit_text("ten"), "ExecStart").ends_with("--port 9999"));
}

#[test]
fn uninstall_removes_only_units_that_install_wrote() {
    let project = project("");
    let units = unit_dir_arg(&project);
    ok(&ten(
        &project.dir,
        &["install", "--unit-dir", &units, "--no-start"],
    ));

    let removed = ten(&project.dir, &["uninstall", "--unit-dir", &units]);
    ok(&removed);
    assert!(stdout(&removed).contains("Removed"), "{}", stdout(&removed));
    assert!(!project.unit("ten").exists());

    let missing = ten(&project.dir, &["uninstall", "--unit-dir", &units]);
    failed(&missing);
    assert!(
        stderr(&missing).contains("there is no unit"),
        "{}",
        stderr(&missing)
    );
    assert!(stderr(&missing).contains("hint:"), "{}", stderr(&missing));

    let foreign = project.unit("nginx");
    std::fs::write(&foreign, "[Service]\nExecStart=/usr/sbin/nginx\n").unwrap();
    let refused = ten(
        &project.dir,
        &["uninstall", "--unit-dir", &units, "--name", "nginx"],
    );
    failed(&refused);
    assert!(
        stderr(&refused).contains("was not written by `ten install`"),
        "{}",
        stderr(&refused)
    );
    assert!(foreign.exists());
    // Installing over it is refused too, and says whose it is.
    let over = ten(
        &project.dir,
        &[
            "install",
            "--unit-dir",
            &units,
            "--name",
            "nginx",
            "--no-start",
        ],
    );
    failed(&over);
    assert!(
        stderr(&over).contains("not written by `ten install`"),
        "{}",
        stderr(&over)
    );
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "[Service]\nExecStart=/usr/sbin/nginx\n"
    );

    ok(&ten(
        &project.dir,
        &[
            "uninstall",
            "--unit-dir",
            &units,
            "--name",
            "nginx",
            "--force",
        ],
    ));
    assert!(!foreign.exists());
}

#[test]
fn install_refuses_a_broken_config_and_bad_names() {
    let project = project("");
    let units = unit_dir_arg(&project);
    std::fs::write(
        project.dir.join("tenement.toml"),
        "[service.web]\ncomand = \"x\"\n",
    )
    .unwrap();
    let broken = ten(
        &project.dir,
        &["install", "--unit-dir", &units, "--no-start"],
    );
    failed(&broken);
    assert!(stderr(&broken).contains("comand"), "{}", stderr(&broken));
    assert!(
        stderr(&broken).contains("ten serve` would not start"),
        "{}",
        stderr(&broken)
    );

    let bad_name = ten(
        &project.dir,
        &["install", "--unit-dir", &units, "--name", "../x"],
    );
    failed(&bad_name);
    assert!(
        stderr(&bad_name).contains("unit name"),
        "{}",
        stderr(&bad_name)
    );
    assert_eq!(std::fs::read_dir(&project.units).unwrap().count(), 0);
}

/// ten started from a unit's command line, and the tenants it was seen running: killed when
/// the test ends, pass or fail.
struct Started {
    child: Child,
    tenants: Vec<u32>,
    log: Arc<Mutex<String>>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in &self.tenants {
            let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

/// Starts the unit's service the way systemd would: its ExecStart, WorkingDirectory and
/// Environment, and otherwise a clean environment.
fn start_unit(unit: &str) -> Started {
    let argv = split_exec_line(setting(unit, "ExecStart"));
    let workdir = setting(unit, "WorkingDirectory").replace("%%", "%");
    let (name, value) = setting(unit, "Environment").split_once('=').unwrap();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(workdir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env(name, value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the unit's command");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let writer = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = writer.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    Started {
        child,
        tenants: Vec::new(),
        log,
    }
}

#[test]
fn the_units_command_line_really_runs_ten_serve() {
    let project = project("");
    let units = unit_dir_arg(&project);
    let data = project.data.to_str().unwrap().to_string();
    ok(&ten(
        &project.dir,
        &[
            "install",
            "--unit-dir",
            &units,
            "--no-start",
            "--data-dir",
            &data,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ],
    ));
    let unit = project.unit_text("ten");
    let mut started = start_unit(&unit);

    // ten says where it listens in the data directory named on the command line.
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let info = std::fs::read(project.data.join("serve.json")).ok();
        if let Some(url) = info
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|info| info["url"].as_str().map(str::to_string))
        {
            break url;
        }
        if let Some(status) = started.child.try_wait().unwrap() {
            panic!(
                "ten exited ({status}) before serving:\n{}",
                started.log.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no serve.json in {}:\n{}",
            project.data.display(),
            started.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let health = Request::get("/health").send(address);
    assert_eq!(health.status, 200, "{health:?}");

    // Its tenant runs; `ten ps` finds the server through the config and data directory.
    let config = project.dir.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let tenant = loop {
        let output = ten(
            project.root.path(),
            &["ps", "--json", "--config", config, "--data-dir", &data],
        );
        ok(&output);
        let views: Vec<InstanceView> = serde_json::from_slice(&output.stdout).unwrap();
        started
            .tenants
            .extend(views.iter().filter_map(|view| view.pid));
        if let Some(view) = views
            .iter()
            .find(|view| view.instance.to_string() == "web:alice" && view.phase == Phase::Running)
            && let Some(pid) = view.pid
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "web:alice does not run: {views:#?}\n{}",
            started.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    // What `systemctl stop` does first with KillMode=mixed: SIGTERM to ten alone.
    kill(Pid::from_raw(started.child.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = started.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ten did not exit on SIGTERM:\n{}",
            started.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "ten exited with {status} (systemd would mark the unit failed):\n{}",
        started.log.lock().unwrap()
    );
    for pid in started.tenants.clone() {
        assert!(wait_gone(pid), "tenant {pid} outlived ten");
    }
    assert!(started.tenants.contains(&tenant));
}
