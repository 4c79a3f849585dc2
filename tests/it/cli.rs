//! The command line, run as a real process.

use std::io::Write;
use std::process::{Command, Stdio};

fn zhigang() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zhigang"));
    c.env_remove("ZHIGANG_DATABASE_URL")
        .env("ZHIGANG_LOG", "warn");
    c
}

#[test]
fn workflow_check_accepts_the_three_builtin_definitions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/workflow/definitions");
    let out = zhigang()
        .args(["workflow", "check"])
        .arg(format!("{dir}/yqyc.toml"))
        .arg(format!("{dir}/ip_fast_track.toml"))
        .arg(format!("{dir}/platform_access.toml"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(": ok (").count(), 3, "{stdout}");
}

#[test]
fn workflow_check_refuses_a_broken_definition_naming_file_step_and_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = include_str!("../../src/workflow/definitions/yqyc.toml");
    let broken = good.replace(
        "organization = \"TJ-AI-COORD\"",
        "organization = \"TJ-NOWHERE\"",
    );
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, broken).expect("write");
    let out = zhigang()
        .args(["workflow", "check"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = good
        .lines()
        .position(|l| l == "id = \"coordination\"")
        .expect("step line")
        + 1;
    assert!(
        stderr.contains(&format!(
            "broken.toml:{line}:1: step \"coordination\": unknown organization \"TJ-NOWHERE\""
        )),
        "{stderr}"
    );

    let malformed = dir.path().join("malformed.toml");
    std::fs::write(&malformed, "key = \"x\"\nsteps = [\n").expect("write");
    let out = zhigang()
        .args(["workflow", "check"])
        .arg(&malformed)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("malformed.toml:2:10: malformed file: unclosed array"),
        "{stderr}"
    );
}

#[test]
fn serve_with_an_unusable_attachment_store_stops_before_touching_the_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = zhigang()
        .env("ZHIGANG_DATA_DIR", dir.path())
        .env("ZHIGANG_LISTEN", "127.0.0.1:0")
        .env("ZHIGANG_ATTACHMENT_STORE", "ftp://files.example.test")
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attachment_store must be `file` or an `s3://bucket[/prefix]` URL"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("zhigang.db").exists(),
        "the database was created or migrated before the setting was checked"
    );
}

#[test]
fn admin_create_user_reads_the_password_from_stdin_and_audit_verify_passes_on_a_fresh_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = zhigang()
        .env("ZHIGANG_DATA_DIR", dir.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "Reviewer@Example.test",
            "--name",
            "李审核",
            "--org",
            "TJ-MIIT",
            "--role",
            "reviewer",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a long enough passphrase\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("created user reviewer@example.test"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("passphrase"),
        "a chosen password is never echoed"
    );

    let again = zhigang()
        .env("ZHIGANG_DATA_DIR", dir.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "reviewer@example.test",
            "--name",
            "x",
        ])
        .output()
        .expect("run");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let generated = zhigang()
        .env("ZHIGANG_DATA_DIR", dir.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "ops@example.test",
            "--name",
            "Ops",
            "--system-admin",
        ])
        .output()
        .expect("run");
    assert!(generated.status.success());
    assert!(
        String::from_utf8_lossy(&generated.stdout).contains("password: "),
        "a generated password is printed once"
    );

    let audit = zhigang()
        .env("ZHIGANG_DATA_DIR", dir.path())
        .args(["audit", "verify"])
        .output()
        .expect("run");
    assert!(audit.status.success());
    assert!(String::from_utf8_lossy(&audit.stdout).contains("0 problems"));
}

#[test]
fn workflow_graph_prints_dot_for_a_type() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = zhigang()
        .env("ZHIGANG_DATA_DIR", dir.path())
        .args(["workflow", "graph", "yqyc", "--locale", "en"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph \"yqyc\" {"), "{dot}");
    assert!(dot.contains("\"lead_review\" -> \"countersign\";"), "{dot}");
    assert!(dot.contains("Countersigning by the bureaus"), "{dot}");
}

/// Starts `zhigang serve` on a free port; returns the child and the base URL.
fn serve(data_dir: &std::path::Path, expect_admin: bool) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let mut child = zhigang()
        .env("ZHIGANG_DATA_DIR", data_dir)
        .env("ZHIGANG_LISTEN", "127.0.0.1:0")
        .env("ZHIGANG_LOG", "info")
        .env("NO_COLOR", "1")
        .args(["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.expect("read log");
        if let Some(rest) = line.split("addr=").nth(1)
            && line.contains("serving")
        {
            addr = Some(rest.trim().to_string());
            break;
        }
    }
    let addr = addr.expect("the server logs its address");
    // Keep draining the log: a server whose stderr is closed under it cannot log.
    std::thread::spawn(move || lines.for_each(drop));
    if !expect_admin {
        return (child, format!("http://{addr}"), String::new());
    }
    let stdout = child.stdout.take().expect("stdout");
    // The first-admin lines come before the server starts serving; read what is there.
    let mut printed = String::new();
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        printed.push_str(&line);
        line.clear();
        if printed.contains("Change this password") {
            break;
        }
    }
    (child, format!("http://{addr}"), printed)
}

#[tokio::test]
async fn serve_migrates_an_empty_database_creates_the_first_admin_once_and_answers_health_checks() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut child, base, printed) = tokio::task::spawn_blocking({
        let p = dir.path().to_path_buf();
        move || serve(&p, true)
    })
    .await
    .expect("join");
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        printed.contains("admin@localhost / password: "),
        "{printed}"
    );
    assert!(
        dir.path().join("zhigang.db").exists(),
        "SQLite under the data dir"
    );

    // A second start on the same database creates no second administrator.
    let (mut child, _, _) = tokio::task::spawn_blocking({
        let p = dir.path().to_path_buf();
        move || serve(&p, false)
    })
    .await
    .expect("join");
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("password"));
}
