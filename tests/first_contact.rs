//! What a new user hits first: one regression test per defect found by trying ten as a new
//! user would, through the real binary.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::http::Request;
use support::server::{
    TestServer, backend, backend_service, project, stderr, stdout, ten_in, wait_gone, within,
};
use ten::observed::Phase;

/// `ten serve` on `port` for the project in `dir`, its output piped.
fn serve_on(dir: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--config")
        .arg(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ten serve")
}

/// Kills `child` (if it still runs) when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_second_server_on_the_same_port_refuses_to_start() {
    let first_dir = project("", &backend_service("web", ""), &[]);
    let first = TestServer::start(first_dir.path());
    let port: u16 = first.url.rsplit(':').next().unwrap().parse().unwrap();

    let second_dir = project("", &backend_service("web", ""), &[]);
    let mut second = Killed(serve_on(second_dir.path(), port));
    let exited = within(Duration::from_secs(20), || {
        second.0.try_wait().ok().flatten().is_some()
    });
    let mut output = String::new();
    if exited {
        let _ = second.0.stderr.take().unwrap().read_to_string(&mut output);
    }
    assert!(
        exited,
        "a second ten serve started on port {port}, where another ten listens"
    );
    let status = second.0.wait().unwrap();
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("address in use") && output.contains(&format!(":{port}")),
        "{output}"
    );
    assert!(
        output.contains("another ten serve"),
        "the refusal says who holds the port: {output}"
    );
    // The first server still answers alone.
    assert!(first.ten(&["ps"]).status.success());
}

#[test]
fn a_closed_output_pipe_neither_panics_ten_nor_orphans_its_tenants() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--config"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .env("TEN_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read until ten says where it listens, then close the pipe: every later write fails.
    let mut stderr_pipe = server.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("Ctrl-C stops\n") {
        match stderr_pipe.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    drop(stderr_pipe);
    let seen = String::from_utf8_lossy(&seen).into_owned();
    let url = seen
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {seen}"))
        .to_string();
    let mut server = Killed(server);
    let ten = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ten"))
            .args(args)
            .arg("--config")
            .arg(dir.path())
            .args(["--server", &url])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let pid = |key: &str| -> Option<u32> {
        let output = ten(&["ps", "--json"]);
        let views: Vec<ten::api::types::InstanceView> =
            serde_json::from_slice(&output.stdout).ok()?;
        views
            .into_iter()
            .find(|view| view.instance.to_string() == key && view.health.to_string() == "healthy")
            .and_then(|view| view.pid)
    };
    // Whatever happens below, no tenant outlives the test.
    let mut tenants = support::server::TenantGuard::default();
    assert!(within(Duration::from_secs(20), || pid("web:a").is_some()));
    tenants.0.insert(pid("web:a").unwrap());
    // More output (a new tenant is logged) while nobody reads it.
    support::write_file(&dir.path().join("instances/web/b.toml"), "");
    assert!(within(Duration::from_secs(20), || pid("web:b").is_some()));
    tenants.0.insert(pid("web:b").unwrap());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(within(Duration::from_secs(20), || {
        server.0.try_wait().ok().flatten().is_some()
    }));
    let status = server.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "ten serve ended with {status}");
    for tenant in &tenants.0 {
        assert!(wait_gone(*tenant), "tenant {tenant} outlived ten");
    }
}

/// A server with one instance, `web:a`, that ran and fell asleep (idle for 1 s); `extra`:
/// more keys of its service.
fn asleep(extra: &str) -> (tempfile::TempDir, TestServer) {
    let dir = project(
        "",
        // Eager: it runs first, then falls asleep.
        &backend_service(
            "web",
            &format!("idle_timeout = 1\nstart = \"eager\"\n{extra}"),
        ),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_until("web:a sleeps", |views| views[0].phase == Phase::Sleeping);
    (dir, server)
}

#[test]
fn start_spawn_and_health_of_a_sleeping_instance_answer_at_once() {
    let (_dir, server) = asleep("");
    for verb in ["start", "spawn"] {
        let output = server.ten(&[verb, "web:a"]);
        assert!(output.status.success(), "ten {verb}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("sleeping; it wakes on its next request"),
            "ten {verb}: {}",
            stdout(&output)
        );
    }
    let output = server.ten(&["health", "web:a"]);
    assert!(output.status.success(), "ten health: {}", stderr(&output));
    assert!(stdout(&output).contains("sleeping"), "{}", stdout(&output));
    let output = server.ten(&["health", "web:a", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "sleeping", "{report}");
    // None of it woke the instance.
    assert_eq!(server.ps()[0].phase, Phase::Sleeping);
}

#[test]
fn commands_that_edit_files_never_write_an_invalid_one() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    for (args, hint) in [
        (&["spawn", "webb:x"][..], "did you mean `web`?"),
        (&["spawn", "webb", "--id", "x"], "did you mean `web`?"),
        (&["deploy", "webb:x"], "did you mean `web`?"),
        (&["spawn", "nope:x"], "declared services: web"),
    ] {
        let output = server.ten(args);
        assert!(!output.status.success(), "ten {args:?} succeeded");
        let text = stderr(&output);
        assert!(
            text.contains("which is not declared in tenement.toml") && text.contains(hint),
            "ten {args:?}: {text}"
        );
        assert!(text.contains("nothing was written"), "ten {args:?}: {text}");
    }
    for service in ["webb", "nope"] {
        assert!(
            !dir.path().join("instances").join(service).exists(),
            "an instance file for the undeclared service {service} was written"
        );
    }
    // Nothing is frozen: a new tenant still starts, and the files are valid.
    support::write_file(&dir.path().join("instances/web/b.toml"), "");
    server.wait_running("web:b");
    assert!(server.ten(&["validate"]).status.success());
}

#[test]
fn broken_instance_files_are_reported_at_startup_in_ps_and_in_the_log() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[
            ("instances/web/a.toml", ""),
            ("instances/web/b.toml", "state = 5\n"),
        ],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let log = server.log();
    assert!(
        log.contains("instances/web/b.toml:1:9")
            && log.contains("`state` in this instance file must be a string"),
        "the startup output shows the problem as `ten validate` does:\n{log}"
    );
    let output = server.ten(&["ps"]);
    let text = format!("{}{}", stderr(&output), stdout(&output));
    assert!(
        text.contains("1 instance file has errors") && text.contains("instances/web/b.toml"),
        "{text}"
    );

    // Every file broken: ps does not say that nothing is declared.
    support::write_file(&dir.path().join("instances/web/a.toml"), "weight = \"x\"\n");
    server.wait_until("web:a is frozen", |_| {
        stderr(&server.ten(&["ps"])).contains("2 instance files have errors")
    });
    let output = server.ten(&["ps"]);
    assert!(
        !stdout(&output).contains("No instances are declared"),
        "{}",
        stdout(&output)
    );

    // A broken tenement.toml while serving is logged as a warning, not as information.
    std::fs::write(dir.path().join("tenement.toml"), "[service.web\n").unwrap();
    assert!(
        within(Duration::from_secs(20), || server.log().lines().any(
            |line| line.contains(" WARN ") && line.contains("tenement.toml:1")
        )),
        "{}",
        server.log()
    );
}

#[test]
fn a_service_that_sets_a_socket_listens_on_it_as_in_the_seed() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join("api-{id}.sock");
    // The original's README, literally but for the program and the socket's directory.
    let services = format!(
        "[process.api]\ncommand = \"{} --socket\"\nsocket = \"{}\"\nhealth = \"/health\"\n\n\
         [process.api.env]\nDATABASE_PATH = \"{{data_dir}}/{{id}}/app.db\"\n\n\
         [process.web]\ncommand = \"{}\"\nsocket = \"{}\"\nhealth = \"/health\"\nstartup_timeout = 1\n",
        support::server::backend().display(),
        socket.display(),
        support::server::backend().display(),
        root.path().join("web-{id}.sock").display(),
    );
    let dir = project("", &services, &[]);
    let server = TestServer::start(dir.path());
    let output = server.ten(&["spawn", "api", "--id", "user123"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listening = root.path().join("api-user123.sock");
    assert!(
        stdout(&output).contains(&listening.display().to_string()),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        server.get("user123.api.localhost", "/health"),
        (200, "ok\n".into())
    );
    // An app that listens on $PORT although the service names a socket: the error says what
    // ten waited for and what to change.
    let output = server.ten(&["spawn", "web:a"]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("waited for GET /health on the socket")
            && text.contains("web-a.sock")
            && text.contains("listen = \"port\""),
        "{text}"
    );
}

#[test]
fn https_that_cannot_be_served_is_refused_not_ignored() {
    // HTTPS for a name no CA can certify (the default domain, localhost), and ACME flags
    // without HTTPS: ten says so and does not start, rather than serve plain HTTP.
    let dir = project("", &backend_service("web", ""), &[]);
    let serve = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ten"))
            .args([
                "serve",
                "--port",
                "0",
                "--https-port",
                "0",
                "--http-port",
                "0",
            ])
            .args(args)
            .arg("--config")
            .arg(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let output = serve(&["--tls", "--email", "admin@example.com"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("HTTPS needs a public domain") && text.contains("--domain"),
        "{text}"
    );
    assert!(!text.contains("listening on"), "{text}");
    let output = serve(&["--email", "admin@example.com", "--domain", "example.com"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("HTTPS, which is not enabled") && text.contains("--tls"),
        "{text}"
    );
    assert!(!text.contains("listening on"), "{text}");
}

#[test]
fn https_on_a_privileged_port_without_the_right_says_how_to_get_it() {
    // As a user without CAP_NET_BIND_SERVICE (nobody), HTTPS on 443 cannot be bound: the
    // error says why and how, rather than only "permission denied".
    use std::os::unix::fs::PermissionsExt;
    let dir = project(
        "[settings.tls]\nenabled = true\ndomain = \"example.com\"\nhttp_port = 0\n",
        &backend_service("web", ""),
        &[],
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_ten"))
        .args(["serve", "--port", "0", "--config"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(":443: Permission denied") && text.contains("CAP_NET_BIND_SERVICE"),
        "{text}"
    );
}

#[test]
fn falling_asleep_is_not_logged_as_a_start() {
    // The app ignores its stop signal, so falling asleep takes stop_timeout (2 s, then
    // SIGKILL): reconcile passes run while it is stopping on its way to sleep.
    let (_dir, server) = asleep("stop_signal = \"WINCH\"");
    let events = stdout(&server.ten(&["events", "web:a"]));
    let after_sleep: Vec<&str> = events
        .lines()
        .skip_while(|line| !line.contains("sleep"))
        .collect();
    assert!(!after_sleep.is_empty(), "{events}");
    assert!(
        !after_sleep.iter().any(|line| line.contains("start")),
        "{events}"
    );
}

#[test]
fn route_to_itself_is_refused_and_nothing_changes() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "weight = 70\n")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let output = server.ten(&["route", "web", "--from", "a", "--to", "a"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("same instance"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("instances/web/a.toml")).unwrap(),
        "weight = 70\n"
    );
}

/// `ten ARGS` failed (exit code 1) with `error` and `hint` on stderr.
fn refused_saying(output: &std::process::Output, args: &[&str], error: &str, hint: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "ten {args:?}: {text}");
    assert!(
        text.contains(error) && text.contains(hint),
        "ten {args:?}: {text}"
    );
}

/// `ten route` to or from an instance that is not declared, or of a service that does not
/// exist, fails as `ten stop` does: with `ten spawn` to declare it, or "did you mean".
#[test]
fn route_of_an_undeclared_instance_says_how_to_declare_it() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "weight = 70\n")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    for (args, error, hint) in [
        (
            &["route", "web", "--from", "a", "--to", "eve"][..],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["route", "web", "--from", "eve", "--to", "a"],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["route", "webb", "--from", "a", "--to", "b"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
    ] {
        refused_saying(&server.ten(args), args, error, hint);
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("instances/web/a.toml")).unwrap(),
        "weight = 70\n"
    );
}

#[test]
fn an_instance_id_a_typo_away_from_a_declared_one_is_named() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/alice.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:alice");
    for (args, error, hint) in [
        (
            &["rm", "web:alcie"][..],
            "web:alcie is not declared: there is nothing to remove",
            "did you mean `web:alice`?",
        ),
        (
            &["rm", "web:zed"],
            "web:zed is not declared: there is nothing to remove",
            "`ten ps web` lists its instances",
        ),
        (
            &["rm", "webb:alice"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["stop", "web:alcie"],
            "web:alcie is not declared",
            "did you mean `web:alice`?",
        ),
        (
            &["logs", "web:alcie"],
            "web:alcie is not declared",
            "did you mean `web:alice`?",
        ),
    ] {
        refused_saying(&server.ten(args), args, error, hint);
    }
    assert!(dir.path().join("instances/web/alice.toml").exists());
    assert!(server.instance("web:alice").is_some());
}

#[test]
fn deploy_starts_an_instance_of_an_on_demand_service_and_gives_it_traffic_once_healthy() {
    // `idle_timeout` without `start`: on demand, so a new instance is declared asleep.
    let dir = project(
        "",
        &format!(
            "{}{}",
            backend_service("web", "idle_timeout = 60"),
            backend_service("broken", "idle_timeout = 60")
                .replace(&backend().display().to_string(), "sh -c 'exit 1'")
        ),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_until("web:a sleeps", |views| {
        views.iter().any(|view| view.phase == Phase::Sleeping)
    });
    let deploy = server.ten(&["deploy", "web:v2", "--weight", "100", "--timeout", "15"]);
    assert!(deploy.status.success(), "{}", stderr(&deploy));
    assert!(
        stdout(&deploy).contains("deployed: healthy, now taking traffic with weight 100"),
        "{}",
        stdout(&deploy)
    );
    let view = server.instance("web:v2").unwrap();
    assert_eq!(view.weight, 100, "{view:?}");
    assert!(view.pid.is_some(), "{view:?}");
    let (status, body) = server.get("v2.web.localhost", "/");
    assert_eq!(status, 200, "{body}");

    // One that cannot start is started too, so its failure is told at once, with where to
    // look, and it gets no traffic.
    let failed = server.ten(&["deploy", "broken:v1", "--timeout", "15"]);
    assert_eq!(failed.status.code(), Some(1));
    let text = stderr(&failed);
    assert!(
        text.contains("did not become healthy, so it takes no traffic")
            && !text.contains("sleeping")
            && text.contains("`ten events broken:v1`"),
        "{text}"
    );
    assert_eq!(server.instance("broken:v1").unwrap().weight, 0);
}

#[test]
fn apply_speaks_json_on_every_error_and_applies_a_reviewed_plan_without_asking() {
    let dir = project(
        "auto_apply = false",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let json_error = |args: &[&str]| {
        let output = if args.contains(&"--server") {
            ten_in(dir.path(), args, &[])
        } else {
            server.ten(args)
        };
        assert_eq!(output.status.code(), Some(1), "ten {args:?}");
        let error: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("ten {args:?}: no JSON on stdout: {}", stdout(&output)));
        assert!(error["error"].is_string(), "ten {args:?}: {error}");
        error
    };
    // Without a terminal and without --auto-approve.
    json_error(&["apply", "--json"]);
    // A token from another plan.
    let error = json_error(&["apply", "--json", "--check", "0000000000000000"]);
    assert!(
        error["error"].as_str().unwrap().contains("plan changed"),
        "{error}"
    );
    // No server there.
    json_error(&["apply", "--json", "--server", "http://127.0.0.1:9"]);
    // Files with errors: their diagnostics are in the JSON.
    support::write_file(&dir.path().join("instances/web/b.toml"), "weight = \"x\"\n");
    server.wait_until("b's error is seen", |_| {
        !stdout(&server.ten(&["diff", "--json"])).contains("\"diagnostics\": []")
    });
    let error = json_error(&["apply", "--json"]);
    assert_eq!(
        error["diagnostics"][0]["file"], "instances/web/b.toml",
        "{error}"
    );
    std::fs::remove_file(dir.path().join("instances/web/b.toml")).unwrap();

    // The plan reviewed with `ten diff` is applied by its token, without a prompt.
    server.wait_until("b is gone from the plan", |_| {
        stdout(&server.ten(&["diff", "--json"])).contains("\"diagnostics\": []")
    });
    let plan: serde_json::Value =
        serde_json::from_slice(&server.ten(&["diff", "--json"]).stdout).unwrap();
    let token = plan["token"].as_str().unwrap();
    let output = server.ten(&["apply", "--check", token]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    server.wait_running("web:a");
}

#[test]
fn health_answers_json_and_a_cli_of_another_config_is_told_so() {
    let first = project("", &backend_service("web", ""), &[]);
    let server = TestServer::start(first.path());
    let (status, body) = server.get("localhost", "/health");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{body}");

    // A CLI in another project, pointed at this server.
    let second = project("", &backend_service("web", ""), &[]);
    let output = ten_in(second.path(), &["ps", "--server", &server.url], &[]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("serves another tenement.toml") && text.contains(&server.url),
        "{text}"
    );
}

#[test]
fn a_cli_whose_config_has_no_server_is_told_to_start_one_not_to_look_elsewhere() {
    let first = project("", &backend_service("web", ""), &[]);
    let server = TestServer::start(first.path());
    // Another project, whose server does not run, finds the first one where it looks (as a
    // server of another config found on the default address).
    let second = project("", &backend_service("web", ""), &[]);
    let env = [("TENEMENT_SERVER", server.url.as_str())];
    let output = ten_in(second.path(), &["ps"], &env);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "no ten serve runs for {}",
            second.path().join("tenement.toml").display()
        )) && text.contains(&format!("the server at {} serves another", server.url)),
        "{text}"
    );
    assert!(
        text.contains("`ten serve`")
            && text.contains("`ten diff --offline`")
            && text.contains("--server"),
        "{text}"
    );

    // Once it runs, a CLI pointed at the other server is told where its own listens.
    let own = TestServer::start(second.path());
    let output = ten_in(second.path(), &["ps"], &env);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("the server at {} serves another", server.url))
            && text.contains(&format!("this config's server listens at {}", own.url)),
        "{text}"
    );
}

#[test]
fn shutdown_names_a_server_running_in_the_foreground_and_says_how_to_stop_it() {
    let dir = project("", &backend_service("web", ""), &[]);
    let server = TestServer::start(dir.path());
    let output = ten_in(dir.path(), &["shutdown"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let pid = server.pid();
    assert!(
        text.contains(&format!("ten serve (pid {pid}) runs for this config"))
            && text.contains("Ctrl-C")
            && text.contains(&format!("`kill {pid}`"))
            && !text.contains("nothing to stop"),
        "{text}"
    );
    // A server started in the foreground is its user's to stop: it still serves.
    assert!(server.ten(&["ps"]).status.success());
}

#[test]
fn commands_without_a_config_in_reach_say_so() {
    let empty = tempfile::tempdir().unwrap();
    let output = ten_in(empty.path(), &["spawn", "notes:alice"], &[]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("no tenement.toml in") && text.contains("ten init"),
        "{text}"
    );
    for args in [
        &["validate"][..],
        &["validate", "--config", "/nonexistent/tenement.toml"],
    ] {
        let output = ten_in(empty.path(), args, &[]);
        assert_eq!(output.status.code(), Some(1), "ten {args:?}");
        assert!(
            stderr(&output).contains("ten init"),
            "ten {args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn init_makes_a_project_that_validates_and_never_suggests_install() {
    let empty = tempfile::tempdir().unwrap();
    let output = ten_in(empty.path(), &["init"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!said.contains("install"), "{said}");
    assert!(said.contains("ten serve"), "{said}");
    assert!(empty.path().join("tenement.toml").is_file());
    assert!(empty.path().join("instances").is_dir());
    let output = ten_in(empty.path(), &["validate"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A second init changes nothing.
    let before = std::fs::read_to_string(empty.path().join("tenement.toml")).unwrap();
    let output = ten_in(empty.path(), &["init"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("already"), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(empty.path().join("tenement.toml")).unwrap(),
        before
    );
}

/// A data directory whose path is not UTF-8 is refused before anything is made there: its
/// paths reach tenants as text, and a lossy copy would name another directory.
#[test]
fn a_data_directory_that_is_not_utf8_is_refused_with_a_hint() {
    use std::os::unix::ffi::OsStrExt;
    let dir = project("", &backend_service("web", ""), &[]);
    let data = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9-data"));
    let mut serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_ten"))
            .args(["serve", "--bind", "127.0.0.1", "--port", "0"])
            .arg("--config")
            .arg(dir.path())
            .arg("--data-dir")
            .arg(&data)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ten serve"),
    );
    let exited = within(Duration::from_secs(20), || {
        serve.0.try_wait().ok().flatten().is_some()
    });
    assert!(
        exited,
        "ten serve runs with a data directory that is not UTF-8"
    );
    let mut said = String::new();
    serve
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    let status = serve.0.wait().unwrap();
    assert!(!status.success(), "{said}");
    assert!(said.contains("is not valid UTF-8"), "{said}");
    assert!(said.contains("--data-dir"), "{said}");
    assert!(!data.exists(), "the directory was made: {said}");
}

/// A file in a service directory that does not end in `.toml` declares nothing: `validate`,
/// `diff` and the server's log say so (with a hint to rename it), as they do of a `.toml`
/// file outside a service directory. Hidden files and editor temporaries are skipped quietly.
#[test]
fn files_in_a_service_directory_that_are_not_instance_files_are_reported() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[
            ("instances/web/a.toml", ""),
            ("instances/web/b", ""),
            ("instances/web/c.TOML", ""),
            ("instances/web/d.yaml", ""),
            ("instances/web/.e.toml", ""),
            ("instances/web/f.toml~", ""),
            ("instances/web/.g.toml.swp", ""),
            ("instances/web/.g.toml.swx", ""),
            ("instances/web/#h.toml#", ""),
        ],
    );
    let reported = |text: &str| {
        for (file, hint) in [
            ("b", "rename it to instances/web/b.toml"),
            ("c.TOML", "rename it to instances/web/c.toml"),
            ("d.yaml", "rename it to instances/web/d.toml"),
        ] {
            let warning = format!("instances/web/{file}");
            assert!(
                text.lines().any(|line| line.contains(&warning))
                    && text
                        .contains("not an instance file (an instance file ends in .toml); ignored")
                    && text.contains(hint),
                "no warning about {file} with `{hint}`:\n{text}"
            );
        }
        for quiet in [
            ".e.toml",
            "f.toml~",
            ".g.toml.swp",
            ".g.toml.swx",
            "#h.toml#",
        ] {
            assert!(!text.contains(quiet), "{quiet} is reported:\n{text}");
        }
    };
    let output = ten_in(dir.path(), &["validate"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    reported(&format!("{}{}", stdout(&output), stderr(&output)));
    let output = ten_in(dir.path(), &["diff", "--offline"], &[]);
    reported(&format!("{}{}", stdout(&output), stderr(&output)));

    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    assert!(
        within(Duration::from_secs(20), || server
            .log()
            .contains("instances/web/d.yaml")),
        "{}",
        server.log()
    );
    reported(&server.log());
    assert_eq!(server.ps().len(), 1, "only web:a is declared");
}

/// `ten ARGS` against `server`, killed if it has not ended after 20 s (`None` then).
fn ten_within(server: &TestServer, args: &[&str]) -> Option<std::process::Output> {
    let mut child = Killed(
        server
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ten"),
    );
    let ended = within(Duration::from_secs(20), || {
        child.0.try_wait().ok().flatten().is_some()
    });
    if !ended {
        return None;
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut err)
        .unwrap();
    Some(std::process::Output {
        status: child.0.wait().unwrap(),
        stdout: out,
        stderr: err,
    })
}

/// `ten logs` and `ten events` of an instance that is not declared, or of a service that does
/// not exist, fail as `ten stop` does (with "did you mean"), instead of printing nothing and,
/// with `-f`, waiting forever. An instance no longer declared but still running (its destroy
/// waits for `ten apply`) still shows its output and events.
#[test]
fn logs_and_events_of_an_undeclared_target_fail_instead_of_waiting() {
    let dir = project(
        "auto_apply = false",
        &backend_service("web", ""),
        &[("instances/web/a.toml", ""), ("instances/web/old.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let output = server.ten(&["apply", "--auto-approve"]);
    assert!(output.status.success(), "{}", stderr(&output));
    server.wait_running("web:a");
    server.wait_running("web:old");
    server.wait_until("web:old's output is captured", |_| {
        stdout(&server.ten(&["logs", "web:old"])).contains("listening on")
    });
    std::fs::remove_file(dir.path().join("instances/web/old.toml")).unwrap();
    server.wait_until("web:old is no longer declared", |_| {
        stdout(&server.ten(&["diff", "--summary"])).contains("web:old")
    });
    let output = server.ten(&["logs", "web:old"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("listening on"),
        "{}",
        stdout(&output)
    );
    let output = server.ten(&["events", "web:old"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stdout(&output).is_empty());
    // ps shows it while it runs (its destroy held).
    let output = server.ten(&["ps", "web:old"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("web:old"), "{}", stdout(&output));

    for (args, error, hint) in [
        (
            &["stop", "web:eve"][..],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["logs", "web:eve"],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["logs", "web:eve", "-f"],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["events", "web:eve"],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["events", "web:eve", "-f"],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["stop", "webb:x"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["logs", "webb:x"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["logs", "webb:x", "-f"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["logs", "webb"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["events", "webb:x"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["events", "webb:x", "-f"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["events", "webb"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["events", "webb", "-f"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
        (
            &["ps", "web:eve"],
            "web:eve is not declared",
            "ten spawn web:eve",
        ),
        (
            &["ps", "webb:x"],
            "service `webb` is not declared",
            "did you mean `web`?",
        ),
    ] {
        let output = ten_within(&server, args)
            .unwrap_or_else(|| panic!("ten {args:?} still runs after 20 s"));
        refused_saying(&output, args, error, hint);
    }
}

/// A `limit` that is not a count is refused with a 400 that says so, by `/api/events` as by
/// `/api/logs` (events took it for 100, the default, and said nothing); `ten events --limit`
/// still limits.
#[test]
fn a_limit_that_is_not_a_count_is_refused_by_events_as_by_logs() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let token = std::fs::read_to_string(dir.path().join("tenement-data/api_token")).unwrap();
    for path in [
        "/api/logs?instance=web:a&limit=abc",
        "/api/events?limit=abc",
        "/api/events?instance=web:a&limit=abc",
        "/api/events?limit=-1",
        "/api/events?limit=",
    ] {
        let response = Request::get(path)
            .bearer(token.trim())
            .send(server.address());
        assert_eq!(response.status, 400, "{path}: {}", response.body);
        let error = response.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.starts_with("limit must be a number of "),
            "{path}: {error}"
        );
    }
    let response = Request::get("/api/events?limit=1")
        .bearer(token.trim())
        .send(server.address());
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json().as_array().unwrap().len(),
        1,
        "{}",
        response.body
    );

    let output = server.ten(&["events", "--limit", "1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 1, "{}", stdout(&output));
    let output = server.ten(&["events", "web:a", "--limit", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 2, "{}", stdout(&output));
}

/// `ten events TARGET` with no event of TARGET says so on stderr, as `ten logs` does, instead
/// of printing nothing at all; with `--json` it prints nothing more, and with `-f` it just
/// follows.
#[test]
fn events_of_a_target_without_any_say_so() {
    let dir = project(
        "",
        &format!(
            "{}{}",
            backend_service("web", ""),
            backend_service("quiet", "")
        ),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");

    let output = server.ten(&["events", "quiet"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "no events of quiet (yet)\n");
    let output = server.ten(&["events", "quiet", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        (stdout(&output), stderr(&output)),
        (String::new(), String::new())
    );
    // One that has events: no note.
    let output = server.ten(&["events", "web:a"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("web:a"), "{}", stdout(&output));
    assert_eq!(stderr(&output), "");

    // Followed: no note, before or after the first event.
    let files = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (files.path().join("out"), files.path().join("err"));
    let mut follower = Killed(
        Command::new(env!("CARGO_BIN_EXE_ten"))
            .args(["events", "quiet", "-f"])
            .arg("--config")
            .arg(&server.dir)
            .args(["--server", &server.url])
            .env("NO_COLOR", "1")
            .env_remove("TENEMENT_TOKEN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("run ten events -f"),
    );
    // A moment to find none and start following (had it not, it finds quiet:x's events
    // among the recent ones): no note either way.
    std::thread::sleep(Duration::from_millis(500));
    let output = server.ten(&["spawn", "quiet:x"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let followed = within(Duration::from_secs(20), || {
        std::fs::read_to_string(&out_path).is_ok_and(|out| out.contains("quiet:x"))
    });
    assert!(
        followed,
        "ten events quiet -f printed no event of quiet:x: {}",
        std::fs::read_to_string(&out_path).unwrap()
    );
    assert!(follower.0.try_wait().unwrap().is_none(), "-f ended");
    assert_eq!(std::fs::read_to_string(&err_path).unwrap(), "");
}

/// `ten apply --json` with nothing to apply still speaks NDJSON: a `started` line with no
/// changes and a `finished` line, as when it applies something.
#[test]
fn apply_json_with_nothing_to_apply_says_so_in_json() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_until("nothing is left to apply", |_| {
        stdout(&server.ten(&["diff", "--json"])).contains("\"changes\": []")
    });
    for args in [
        &["apply", "--json", "--auto-approve"][..],
        &["apply", "--json"],
    ] {
        let output = server.ten(args);
        assert!(output.status.success(), "ten {args:?}: {}", stderr(&output));
        let lines: Vec<serde_json::Value> = stdout(&output)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "ten {args:?}: {}", stdout(&output));
        assert_eq!(lines[0]["type"], "started", "{}", lines[0]);
        assert_eq!(lines[0]["changes"], 0, "{}", lines[0]);
        assert!(lines[0]["token"].is_string(), "{}", lines[0]);
        assert_eq!(
            lines[1],
            serde_json::json!({"type": "finished", "ok": 0, "failed": 0})
        );
    }
}
