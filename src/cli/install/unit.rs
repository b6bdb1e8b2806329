//! The unit file `ten install` writes. PURE: what the unit says ([`UnitSpec`]) in, its text
//! out ([`render_unit`]), the words of `ExecStart=` quoted per systemd.syntax(7)
//! ([`quote_exec_word`]), and the checks that refuse what a unit cannot express. Must not
//! touch files or processes (`spec`, `unit_file` and `systemd` do).

use std::path::{Path, PathBuf};

use crate::cli::CliError;

/// The first line of every unit `ten install` writes; `ten uninstall` looks for it.
pub(super) const MARKER: &str = "# Written by `ten install`";

/// How long systemd waits for ten to stop, beyond the time its tenants may take to stop (the
/// longest `stop_timeout` of each `stop_order`, one after another): ten itself gives the last
/// 5 s more than that, and systemd 10 s more than ten.
const STOP_MARGIN_SECS: u64 = 15;

/// Everything the unit says, found and checked.
#[derive(Debug, Clone)]
pub(super) struct UnitSpec {
    /// Without `.service`.
    pub name: String,
    pub exe: PathBuf,
    pub config_path: PathBuf,
    pub data_dir: Option<PathBuf>,
    /// Serve flags after `--config` and `--data-dir`: `--port N`, ...
    pub serve_args: Vec<String>,
    pub user: Option<String>,
    /// HTTPS on ports below 1024 (443, 80): a `User=` needs the right to bind them.
    pub privileged_ports: bool,
    pub keep_tenants_on_exit: bool,
    pub longest_stop_timeout_secs: u64,
    /// Set when not the default, for the uninstall command in the header.
    pub unit_dir: Option<PathBuf>,
}

impl UnitSpec {
    /// The command line of `ExecStart=`, unquoted.
    pub(super) fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            path_text(&self.exe),
            "serve".into(),
            "--config".into(),
            path_text(&self.config_path),
        ];
        if let Some(dir) = &self.data_dir {
            argv.push("--data-dir".into());
            argv.push(path_text(dir));
        }
        argv.extend(self.serve_args.iter().cloned());
        argv
    }

    pub(super) fn config_dir(&self) -> &Path {
        self.config_path.parent().unwrap_or(Path::new("/"))
    }

    pub(super) fn uninstall_command(&self) -> String {
        let mut words = vec!["ten", "uninstall", "--name", &self.name];
        let dir = self.unit_dir.as_deref().map(path_text);
        if let Some(dir) = &dir {
            words.extend(["--unit-dir", dir]);
        }
        shell_words::join(words)
    }
}

pub(super) fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The unit file. Paths must have passed [`check_paths`].
pub(super) fn render_unit(spec: &UnitSpec) -> String {
    let config = path_text(&spec.config_path);
    let exec_start: Vec<String> = spec
        .argv()
        .iter()
        .map(|word| quote_exec_word(word))
        .collect();
    let mut unit = format!(
        "{MARKER} for {config}.\n\
         # It runs `ten serve` for that config. Edit the config, not this file: ten applies changes\n\
         # to tenement.toml and instances/ by itself. Run `ten install --force` again after moving\n\
         # ten or the config, or changing a serve flag or a stop_timeout.\n\
         # Remove it with: {uninstall}\n\
         \n\
         [Unit]\n\
         Description=ten: the tenants of {description}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={exec_start}\n\
         WorkingDirectory={workdir}\n",
        uninstall = spec.uninstall_command(),
        description = escape_specifiers(&config),
        exec_start = exec_start.join(" "),
        workdir = escape_specifiers(&path_text(spec.config_dir())),
    );
    if let Some(user) = &spec.user {
        unit.push_str(&format!("User={user}\n"));
        if spec.privileged_ports {
            unit.push_str(
                "# HTTPS listens on ports below 1024: the one right it needs for that, no other.\n\
                 AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
            );
        }
    }
    unit.push_str("Environment=TEN_LOG=info\nRestart=on-failure\nRestartSec=1\n");
    if spec.keep_tenants_on_exit {
        unit.push_str(
            "# keep_tenants_on_exit = true: stopping or restarting the unit stops ten only; its\n\
             # tenants keep running and the next ten adopts them (upgrades without tenant downtime).\n\
             KillMode=process\n",
        );
    } else {
        unit.push_str(
            "# ten stops its tenants gracefully on SIGTERM; whatever is left when it exits is killed.\n\
             KillMode=mixed\n",
        );
    }
    unit.push_str(&format!(
        "# Stopping the tenants, one stop_order after another ({}s), plus margins for ten and systemd.\n\
         TimeoutStopSec={}\n\
         LimitNOFILE=1048576\n\
         # Each tenant gets a cgroup of its own, which ten makes under /ten in each hierarchy.\n\
         Delegate=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        spec.longest_stop_timeout_secs,
        spec.longest_stop_timeout_secs + STOP_MARGIN_SECS,
    ));
    unit
}

/// One word of an `ExecStart=` line, as systemd reads it back (systemd.syntax(7),
/// systemd.service(5)): a word of only safe characters is written as is; anything else in
/// double quotes with C escapes for `"`, `\` and control characters. `%` is doubled (systemd
/// expands `%` specifiers after unquoting) and so is `$` (it substitutes variables when it
/// runs the command).
pub(super) fn quote_exec_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        match c {
            '%' => quoted.push_str("%%"),
            '$' => quoted.push_str("$$"),
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_ascii_control() => quoted.push_str(&format!("\\x{:02x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A value of a setting that expands `%` specifiers but takes no quotes
/// (`WorkingDirectory=`, `Description=`).
pub(super) fn escape_specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

/// Refuses paths a unit cannot express: not UTF-8, control characters (unit files are
/// line-based), whitespace or `\` at an end (systemd strips the one and reads the other as a
/// line continuation), and for the binary what systemd refuses in an executable's path.
pub(super) fn check_paths(spec: &UnitSpec) -> Result<(), CliError> {
    let unusable = |path: &Path, what: &str, why: &str| {
        CliError::new(format!(
            "a systemd unit cannot use {what} {}: {why}",
            path.display()
        ))
    };
    let text = |path: &Path, what: &str| -> Result<String, CliError> {
        let text = path
            .to_str()
            .ok_or_else(|| unusable(path, what, "it is not UTF-8"))?;
        if text.chars().any(|c| c.is_control()) {
            return Err(unusable(path, what, "it contains a control character"));
        }
        Ok(text.to_string())
    };
    let exe = text(&spec.exe, "the ten binary")?;
    if exe.contains(['"', '\'', '\\', '$']) {
        return Err(unusable(
            &spec.exe,
            "the ten binary",
            "systemd refuses quotes, `\\` and `$` in the path of a program",
        )
        .hint("copy ten to a plain path such as /usr/local/bin/ten and run it from there"));
    }
    text(&spec.config_path, "the config")?;
    if let Some(dir) = &spec.data_dir {
        text(dir, "the data directory")?;
    }
    if let Some(dir) = &spec.unit_dir {
        text(dir, "the unit directory")?;
    }
    let dir = text(spec.config_dir(), "the config's directory")?;
    if dir.ends_with(char::is_whitespace) || dir.ends_with('\\') {
        return Err(unusable(
            spec.config_dir(),
            "the config's directory",
            "it ends with whitespace or `\\`",
        ));
    }
    Ok(())
}

/// `--name`: a unit name without its `.service` (given or not).
pub(super) fn unit_name(name: &str) -> Result<String, CliError> {
    let name = name.strip_suffix(".service").unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 200
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if valid {
        Ok(name.to_string())
    } else {
        Err(CliError::new(format!("{name:?} is not a usable unit name"))
            .hint("use letters, digits, `-`, `_`, `.` and `:`, starting with a letter or digit, e.g. --name ten-shop"))
    }
}

/// `--user`: a name systemd accepts in `User=`, or a numeric uid.
pub(super) fn check_user_name(user: &str) -> Result<(), CliError> {
    let numeric = !user.is_empty() && user.chars().all(|c| c.is_ascii_digit());
    let name = user.len() <= 32
        && user.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if numeric || name {
        Ok(())
    } else {
        Err(CliError::new(format!("{user:?} is not a valid user name")))
    }
}

/// Whether `ten install` wrote this unit.
pub(super) fn is_ours(text: &str) -> bool {
    text.lines().take(5).any(|line| line.starts_with(MARKER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_as_systemd_reads_them() {
        let cases = [
            ("serve", "serve"),
            ("/usr/local/bin/ten", "/usr/local/bin/ten"),
            ("--port", "--port"),
            ("127.0.0.1", "127.0.0.1"),
            ("", "\"\""),
            ("/srv/my app/tenement.toml", "\"/srv/my app/tenement.toml\""),
            ("100%", "\"100%%\""),
            ("%h", "\"%%h\""),
            ("$HOME", "\"$$HOME\""),
            ("${HOME}", "\"$${HOME}\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("C:\\dir", "\"C:\\\\dir\""),
            ("it's", "\"it's\""),
            (";", "\";\""),
            ("a\nb", "\"a\\nb\""),
            ("a\tb\rc", "\"a\\tb\\rc\""),
            ("bell\u{7}", "\"bell\\x07\""),
            ("del\u{7f}", "\"del\\x7f\""),
            ("café", "\"café\""),
        ];
        for (word, expected) in cases {
            assert_eq!(quote_exec_word(word), expected, "quoting {word:?}");
        }
    }

    #[test]
    fn specifiers_are_escaped_in_plain_values() {
        assert_eq!(escape_specifiers("/srv/100% app"), "/srv/100%% app");
        assert_eq!(escape_specifiers("/srv/app"), "/srv/app");
    }

    fn spec() -> UnitSpec {
        UnitSpec {
            name: "ten".into(),
            exe: "/usr/local/bin/ten".into(),
            config_path: "/srv/my app/tenement.toml".into(),
            data_dir: Some("/var/lib/ten 100%".into()),
            serve_args: vec!["--port".into(), "80".into()],
            user: None,
            privileged_ports: false,
            keep_tenants_on_exit: false,
            longest_stop_timeout_secs: 10,
            unit_dir: None,
        }
    }

    #[test]
    fn the_unit_runs_serve_with_absolute_paths() {
        let unit = render_unit(&spec());
        assert!(unit.starts_with(MARKER), "{unit}");
        assert!(is_ours(&unit));
        for line in [
            "ExecStart=/usr/local/bin/ten serve --config \"/srv/my app/tenement.toml\" --data-dir \"/var/lib/ten 100%%\" --port 80",
            "WorkingDirectory=/srv/my app",
            "KillMode=mixed",
            "TimeoutStopSec=25",
            "Restart=on-failure",
            "RestartSec=1",
            "LimitNOFILE=1048576",
            "Delegate=yes",
            "Environment=TEN_LOG=info",
            "WantedBy=multi-user.target",
            "# Remove it with: ten uninstall --name ten",
        ] {
            assert!(
                unit.lines().any(|l| l == line),
                "missing {line:?} in\n{unit}"
            );
        }
        assert!(!unit.contains("User="));
    }

    #[test]
    fn keeping_tenants_means_systemd_kills_only_ten() {
        let spec = UnitSpec {
            keep_tenants_on_exit: true,
            user: Some("ten".into()),
            unit_dir: Some("/tmp/my units".into()),
            ..spec()
        };
        let unit = render_unit(&spec);
        assert!(unit.lines().any(|l| l == "KillMode=process"), "{unit}");
        assert!(unit.lines().any(|l| l == "User=ten"), "{unit}");
        assert!(
            unit.contains("ten uninstall --name ten --unit-dir '/tmp/my units'"),
            "{unit}"
        );
        assert!(!unit.contains("AmbientCapabilities"), "{unit}");
    }

    #[test]
    fn a_user_serving_https_on_443_gets_only_the_right_to_bind_it() {
        let unit = render_unit(&UnitSpec {
            user: Some("ten".into()),
            privileged_ports: true,
            ..spec()
        });
        assert!(
            unit.lines()
                .any(|l| l == "AmbientCapabilities=CAP_NET_BIND_SERVICE"),
            "{unit}"
        );
        // As root it has the right already.
        let unit = render_unit(&UnitSpec {
            privileged_ports: true,
            ..spec()
        });
        assert!(!unit.contains("AmbientCapabilities"), "{unit}");
    }

    #[test]
    fn paths_a_unit_cannot_express_are_refused() {
        let exe_with_dollar = UnitSpec {
            exe: "/opt/$x/ten".into(),
            ..spec()
        };
        assert!(check_paths(&exe_with_dollar).is_err());
        let newline = UnitSpec {
            config_path: "/srv/a\nb/tenement.toml".into(),
            ..spec()
        };
        assert!(check_paths(&newline).is_err());
        let trailing_space = UnitSpec {
            config_path: "/srv/app /tenement.toml".into(),
            ..spec()
        };
        assert!(check_paths(&trailing_space).is_err());
        assert!(check_paths(&spec()).is_ok());
    }

    #[test]
    fn unit_names_are_checked() {
        assert_eq!(unit_name("ten").unwrap(), "ten");
        assert_eq!(unit_name("ten-shop.service").unwrap(), "ten-shop");
        for bad in ["", "../x", "a b", "-x", "a/b", "x@"] {
            assert!(unit_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_user_name("www-data").is_ok());
        assert!(check_user_name("1000").is_ok());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name("-x").is_err());
    }
}
