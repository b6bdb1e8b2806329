//! `ten caddy` end to end: the real binary makes the Caddyfile, and the real Caddy (Debian
//! package `caddy`, which `.ci/run` installs) parses and validates it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = "\
[settings]
trusted_proxies = [\"127.0.0.1\"]

[settings.tls]
domain = \"example.com\"
acme_email = \"admin@example.com\"

[service.notes]
command = \"python3 app.py\"

[service.api]
command = \"./api\"
";

fn ten(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(args)
        .current_dir(dir)
        .env_remove("TENEMENT_CONFIG")
        .env_remove("TENEMENT_PORT")
        .env("NO_COLOR", "1")
        .output()
        .expect("run ten")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `caddy ARGS` in `dir`, with its home and data there too (nothing of the user's touched).
fn caddy(dir: &Path, args: &[&str]) -> Output {
    Command::new("caddy")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run caddy ({error}): these tests need it; install it with `apt-get install caddy` (.ci/run does)"
            )
        })
}

/// Asserts that Caddy accepts the Caddyfile at `file` as it is, formatting included (Caddy
/// warns at every start about a file that `caddy fmt` would change).
fn caddy_accepts(dir: &Path, file: &str) {
    let validated = caddy(
        dir,
        &["validate", "--config", file, "--adapter", "caddyfile"],
    );
    let log = stderr(&validated);
    assert!(validated.status.success(), "caddy validate {file}: {log}");
    assert!(!log.contains("not formatted"), "{file}: {log}");
    let formatted = caddy(dir, &["fmt", file]);
    assert!(formatted.status.success(), "{}", stderr(&formatted));
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(stdout(&formatted), text, "caddy fmt changes {file}");
}

/// The on-demand alternative of `caddyfile`, uncommented, with `ask` pointed somewhere.
fn on_demand_alternative(caddyfile: &str) -> String {
    let (_, alternative) = caddyfile
        .split_once("# Replace the two blocks above with these to use it:\n#\n")
        .expect("the on-demand alternative");
    alternative
        .lines()
        .map(|line| {
            let line = line.strip_prefix('#').expect("commented out");
            format!("{}\n", line.strip_prefix(' ').unwrap_or(line))
        })
        .collect::<String>()
        .replace("ASK_URL", "http://127.0.0.1:9/ask")
}

#[test]
fn caddy_prints_a_caddyfile_that_caddy_accepts() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("tenement.toml"), CONFIG);
    let output = ten(dir.path(), &["caddy"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let caddyfile = stdout(&output);
    assert!(
        caddyfile.starts_with("# Caddy in front of ten"),
        "{caddyfile}"
    );
    for line in [
        "\temail admin@example.com",
        "example.com, *.example.com, *.api.example.com, *.notes.example.com {",
        "\t# \tdns PROVIDER",
        "\treverse_proxy 127.0.0.1:8080",
    ] {
        assert!(
            caddyfile.lines().any(|l| l == line),
            "{line:?} in\n{caddyfile}"
        );
    }
    // Messages are on stderr only; ten already trusts 127.0.0.1 here, so no note says to.
    let messages = stderr(&output);
    assert!(messages.contains("DNS provider"), "{messages}");
    assert!(!messages.contains("trusted_proxies"), "{messages}");
    support::write_file(&dir.path().join("Caddyfile"), &caddyfile);
    caddy_accepts(dir.path(), "Caddyfile");
    support::write_file(
        &dir.path().join("on-demand"),
        &on_demand_alternative(&caddyfile),
    );
    caddy_accepts(dir.path(), "on-demand");
}

#[test]
fn caddy_flags_win_over_the_config_and_output_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(
        &dir.path().join("tenement.toml"),
        "[service.web]\ncommand = \"x\"\n",
    );
    let args = [
        "caddy",
        "--domain",
        "Apps.Example.ORG",
        "--email",
        "ops@example.org",
        "--port",
        "9000",
        "--output",
        "out/Caddyfile",
    ];
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let output = ten(dir.path(), &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "the file is written, not printed");
    let messages = stderr(&output);
    assert!(messages.contains("Wrote out/Caddyfile"), "{messages}");
    assert!(
        messages.contains("add trusted_proxies = [\"127.0.0.1\"] to [settings]"),
        "{messages}"
    );
    let written = std::fs::read_to_string(dir.path().join("out/Caddyfile")).unwrap();
    for line in [
        "\temail ops@example.org",
        "apps.example.org, *.apps.example.org, *.web.apps.example.org {",
        "\treverse_proxy 127.0.0.1:9000",
        "#   ten serve --domain apps.example.org --port 9000 --bind 127.0.0.1",
    ] {
        assert!(written.lines().any(|l| l == line), "{line:?} in\n{written}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["Caddyfile"], "no temporary file is left");
    caddy_accepts(dir.path(), "out/Caddyfile");
}

#[test]
fn caddy_without_a_public_domain_says_where_to_set_one() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(
        &dir.path().join("tenement.toml"),
        "[service.web]\ncommand = \"x\"\n",
    );
    for args in [
        &["caddy"][..],
        &["caddy", "--domain", "localhost"],
        &["caddy", "--domain", "192.0.2.1"],
    ] {
        let output = ten(dir.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stdout(&output), "", "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains("hint: set domain in [settings.tls] or pass --domain"),
            "{args:?}: {message}"
        );
    }
    let output = ten(dir.path(), &["caddy", "--output", "Caddyfile"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!dir.path().join("Caddyfile").exists(), "nothing written");
}
