//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`) driven over the DevTools protocol (`dashboard_support::cdp`). A token is pasted
//! into the login form; the instances show; a `ten stop` reaches the open page over its event
//! stream without a reload; a config error appears and goes; an instance page follows its
//! logs; an instance is restarted from its page; a tenant's token shows only its own instance. Each page is saved as a 1280x800
//! screenshot under `target/dashboard-screenshots/` (for CI's artifacts).

mod dashboard_support;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use dashboard_support::cdp::{Chromium, HEIGHT, WIDTH, png_size};
use dashboard_support::{admin_token, tenant_token, two_tenants};
use support::server::TestServer;

/// How long a change may take to reach an open page.
const LIVE: Duration = Duration::from_secs(15);

fn screenshot(browser: &mut Chromium, name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/dashboard-screenshots")
        .join(format!("{name}.png"));
    browser.screenshot(&path);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        png_size(&bytes),
        Some((WIDTH, HEIGHT)),
        "{}",
        path.display()
    );
}

/// Pastes `token` into the login form of `base` and waits for the first page after it.
fn sign_in(browser: &mut Chromium, base: &str, token: &str) {
    browser.navigate(&format!("{base}/"));
    assert!(browser.wait_for("document.querySelector('form.login')", LIVE));
    browser.eval(&format!(
        "document.querySelector('#token').value = {}; document.querySelector('form.login').submit(); true",
        serde_json::json!(token)
    ));
    assert!(
        browser.wait_for("document.querySelector('header .who')", LIVE),
        "not signed in: {}",
        browser.text("document.body.innerText")
    );
}

/// The phase the open instances page shows for `key`.
fn phase_shown(key: &str) -> String {
    format!("(document.querySelector('tr[data-instance=\"{key}\"] .phase') || {{}}).textContent")
}

#[test]
fn an_admin_signs_in_sees_changes_live_and_restarts_an_instance() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let pid_b = server.wait_running("web:b");
    let base = server.url.clone();
    let mut browser = Chromium::start();

    browser.navigate(&format!("{base}/"));
    assert!(browser.wait_for("document.querySelector('form.login')", LIVE));
    assert!(!browser.text("document.body.innerText").contains("web:a"));
    screenshot(&mut browser, "login");

    sign_in(&mut browser, &base, &admin_token(dir.path()));
    assert!(browser.wait_for("document.body.dataset.live === 'on'", LIVE));
    screenshot(&mut browser, "overview");

    browser.navigate(&format!("{base}/instances"));
    assert!(browser.wait_for(&format!("{} === 'running'", phase_shown("web:a")), LIVE));
    assert!(browser.wait_for(&format!("{} === 'running'", phase_shown("web:b")), LIVE));
    assert!(browser.wait_for("document.body.dataset.live === 'on'", LIVE));
    screenshot(&mut browser, "instances");

    // A mark on the page itself: a reload would lose it.
    browser.eval("window.notReloaded = true");
    let stopped = server.ten(&["stop", "web:a"]);
    assert!(stopped.status.success(), "{stopped:?}");
    assert!(
        browser.wait_for(
            &format!(
                "{} === 'stopped' && window.notReloaded === true",
                phase_shown("web:a")
            ),
            LIVE
        ),
        "the stop did not arrive live: {}",
        browser.text(&phase_shown("web:a"))
    );
    screenshot(&mut browser, "instances-after-stop");

    // A config error appears on the open overview, and goes once the file is fixed.
    browser.navigate(&format!("{base}/"));
    assert!(browser.wait_for("document.body.dataset.live === 'on'", LIVE));
    browser.eval("window.notReloaded = true");
    let file = dir.path().join("instances/web/b.toml");
    std::fs::write(&file, "weight = \"heavy\"\n").unwrap();
    assert!(
        browser.wait_for(
            "document.querySelector('#config-errors') && window.notReloaded === true",
            LIVE
        ),
        "the config error did not show: {}",
        browser.text("document.body.innerText")
    );
    assert!(
        browser
            .text("document.querySelector('#config-errors').innerText")
            .contains("b.toml:1")
    );
    screenshot(&mut browser, "overview-config-error");
    std::fs::write(&file, "").unwrap();
    assert!(
        browser.wait_for(
            "!document.querySelector('#config-errors') && window.notReloaded === true",
            LIVE
        ),
        "the config error did not go"
    );

    // The instance page follows its logs: a request to the tenant shows up as it is logged.
    browser.navigate(&format!("{base}/instances/web:b?follow=1"));
    assert!(browser.wait_for("document.body.dataset.following === 'on'", LIVE));
    let (status, _) = server.get("b.web.localhost", "/?followed-line");
    assert_eq!(status, 200);
    assert!(
        browser.wait_for(
            "document.querySelector('#log-lines').innerText.includes('/?followed-line')",
            LIVE
        ),
        "the line did not arrive: {}",
        browser.text("document.querySelector('#log-lines').innerText")
    );

    // Restart from the instance page.
    browser.navigate(&format!("{base}/instances/web:b"));
    assert!(browser.wait_for("document.querySelector('#restart')", LIVE));
    screenshot(&mut browser, "instance");
    browser.eval("document.querySelector('#restart').click(); true");
    assert!(
        browser.wait_for(
            "document.querySelector('.flash.ok') && document.querySelector('.flash.ok').textContent.includes('restarted')",
            Duration::from_secs(60)
        ),
        "no restart: {}",
        browser.text("document.body.innerText")
    );
    let pid = server.wait_running("web:b");
    assert_ne!(pid, pid_b, "web:b was restarted");
    screenshot(&mut browser, "instance-after-restart");
}

#[test]
fn a_tenant_token_shows_only_its_own_instance() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_running("web:b");
    let token = tenant_token(&server, "web:a");
    let base = server.url.clone();
    let mut browser = Chromium::start();
    sign_in(&mut browser, &base, &token);
    let text = browser.text("document.body.innerText");
    assert!(text.contains("web:a"), "{text}");
    assert!(!text.contains("web:b"), "{text}");
    assert!(browser.wait_for("document.querySelector('#restart')", LIVE));
    assert!(
        browser.eval("document.querySelector('#stop')").is_null(),
        "no stop for a tenant"
    );
    screenshot(&mut browser, "tenant");
    browser.navigate(&format!("{base}/instances"));
    let rows = browser.eval("document.querySelectorAll('tr[data-instance]').length");
    assert_eq!(rows, serde_json::json!(1));
    browser.navigate(&format!("{base}/instances/web:b"));
    let text = browser.text("document.body.innerText");
    assert!(text.contains("Not yours"), "{text}");
    screenshot(&mut browser, "tenant-other-instance");
}
