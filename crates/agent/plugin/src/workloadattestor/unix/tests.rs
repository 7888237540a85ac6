use std::collections::BTreeSet;
use std::io::Write as _;

use super::*;

fn values(selectors: &[Selector]) -> BTreeSet<String> {
    selectors
        .iter()
        .inspect(|s| assert_eq!(s.selector_type(), "unix"))
        .map(|s| s.value().to_owned())
        .collect()
}

fn me() -> i32 {
    i32::try_from(std::process::id()).expect("pid fits i32")
}

#[test]
fn account_name_reads_passwd_and_group_lines() {
    let passwd = "# comment\nroot:x:0:0:root:/root:/bin/bash\n\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n";
    assert_eq!(account_name(passwd, 0), Some("root"));
    assert_eq!(
        account_name(passwd, 1000),
        Some("alice"),
        "first match wins"
    );
    assert_eq!(account_name(passwd, 42), None);
    let group = "wheel:x:10:alice,bob\n:x:11:\n";
    assert_eq!(account_name(group, 10), Some("wheel"));
    assert_eq!(account_name(group, 11), None, "an empty name is no name");
}

#[test]
fn current_process_selectors_match_its_credentials() {
    let selectors = UnixAttestor::new(UnixConfig::default())
        .attest_blocking(me())
        .unwrap();
    let got = values(&selectors);

    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    assert!(got.contains(&format!("uid:{uid}")), "{got:?}");
    assert!(got.contains(&format!("gid:{gid}")), "{got:?}");

    // Names straight from the real account files, parsed independently here.
    let name_of = |file: &str, id: u32| {
        std::fs::read_to_string(file).ok().and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == id.to_string()).then(|| f[0].to_owned())
            })
        })
    };
    match name_of("/etc/passwd", uid) {
        Some(user) => assert!(got.contains(&format!("user:{user}")), "{got:?}"),
        None => assert!(!got.iter().any(|v| v.starts_with("user:")), "{got:?}"),
    }
    match name_of("/etc/group", gid) {
        Some(group) => assert!(got.contains(&format!("group:{group}")), "{got:?}"),
        None => assert!(!got.iter().any(|v| v.starts_with("group:")), "{got:?}"),
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let groups = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_default();
    for supplementary in groups.split_whitespace() {
        assert!(
            got.contains(&format!("supplementary_gid:{supplementary}")),
            "{got:?}"
        );
    }
    assert!(
        !got.iter()
            .any(|v| v.starts_with("path:") || v.starts_with("sha256:")),
        "no path selectors unless discover_workload_path: {got:?}"
    );
}

#[test]
fn names_come_from_the_configured_account_files() {
    let dir = tempfile::tempdir().unwrap();
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let passwd = dir.path().join("passwd");
    let group = dir.path().join("group");
    writeln!(
        std::fs::File::create(&passwd).unwrap(),
        "workload-user:x:{uid}:{gid}::/:/bin/false"
    )
    .unwrap();
    writeln!(
        std::fs::File::create(&group).unwrap(),
        "workload-group:x:{gid}:"
    )
    .unwrap();

    let attestor = UnixAttestor::new(UnixConfig::default()).with_account_files(&passwd, &group);
    let got = values(&attestor.attest_blocking(me()).unwrap());
    assert!(got.contains("user:workload-user"), "{got:?}");
    assert!(got.contains("group:workload-group"), "{got:?}");

    let missing = UnixAttestor::new(UnixConfig::default())
        .with_account_files(dir.path().join("none"), dir.path().join("none"));
    let got = values(&missing.attest_blocking(me()).unwrap());
    assert!(got.contains(&format!("uid:{uid}")));
    assert!(
        !got.iter()
            .any(|v| v.starts_with("user:") || v.starts_with("group:"))
    );
}

#[test]
fn discover_workload_path_adds_path_and_sha256_of_the_test_binary() {
    let exe = std::env::current_exe().unwrap();
    let bytes = std::fs::read(&exe).unwrap();
    let expected = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &bytes,
    ));

    let attestor = UnixAttestor::new(UnixConfig {
        discover_workload_path: true,
        workload_size_limit: 0,
    });
    let got = values(&attestor.attest_blocking(me()).unwrap());
    assert!(got.contains(&format!("path:{}", exe.display())), "{got:?}");
    assert!(got.contains(&format!("sha256:{expected}")), "{got:?}");

    // A limit above the size still hashes.
    let roomy = UnixAttestor::new(UnixConfig {
        discover_workload_path: true,
        workload_size_limit: i64::try_from(bytes.len()).unwrap(),
    });
    assert!(values(&roomy.attest_blocking(me()).unwrap()).contains(&format!("sha256:{expected}")));
}

#[test]
fn workload_size_limit_negative_skips_the_hash_and_too_small_fails() {
    let never = UnixAttestor::new(UnixConfig {
        discover_workload_path: true,
        workload_size_limit: -1,
    });
    let got = values(&never.attest_blocking(me()).unwrap());
    assert!(got.iter().any(|v| v.starts_with("path:")), "{got:?}");
    assert!(!got.iter().any(|v| v.starts_with("sha256:")), "{got:?}");

    let tiny = UnixAttestor::new(UnixConfig {
        discover_workload_path: true,
        workload_size_limit: 1,
    });
    let error = tiny.attest_blocking(me()).unwrap_err();
    assert!(error.to_string().contains("exceeds size limit"), "{error}");
}

#[test]
fn unknown_pid_fails() {
    // PIDs are below pid_max (at most 2^22), so this one never exists.
    let error = UnixAttestor::new(UnixConfig::default())
        .attest_blocking(i32::MAX)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Status {
                code: Code::Internal,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn plugin_data_is_parsed_leniently_and_strictly() {
    let empty = UnixAttestor::from_plugin_data(&serde_json::json!({})).unwrap();
    assert_eq!(empty.config(), &UnixConfig::default());

    let set = UnixAttestor::from_plugin_data(&serde_json::json!({
        "discover_workload_path": "true",
        "workload_size_limit": "1048576",
    }))
    .unwrap();
    assert_eq!(
        set.config(),
        &UnixConfig {
            discover_workload_path: true,
            workload_size_limit: 1_048_576
        }
    );

    let negative =
        UnixAttestor::from_plugin_data(&serde_json::json!({"workload_size_limit": -1})).unwrap();
    assert_eq!(negative.config().workload_size_limit, -1);

    let error =
        UnixAttestor::from_plugin_data(&serde_json::json!({"discover_workload_paht": true}))
            .unwrap_err();
    assert!(
        error.to_string().contains("discover_workload_paht"),
        "{error}"
    );
}

#[test]
fn plugin_data_from_an_hcl_agent_config() {
    let doc = spire_config::Document::parse(
        r#"
        plugins {
            WorkloadAttestor "unix" {
                plugin_data {
                    discover_workload_path = true
                    workload_size_limit = 4096
                }
            }
        }
        "#,
    )
    .unwrap();
    let plugins = spire_config::Plugins::parse(doc.raw("plugins"), &["WorkloadAttestor"]).unwrap();
    let block = plugins.of_type("WorkloadAttestor").next().unwrap();
    assert_eq!(block.name, NAME);
    let attestor = UnixAttestor::from_plugin_data(&block.plugin_data).unwrap();
    assert!(attestor.config().discover_workload_path);
    assert_eq!(attestor.config().workload_size_limit, 4096);
}

#[tokio::test]
async fn the_async_attestor_runs_the_same_reads() {
    let attestor = UnixAttestor::new(UnixConfig::default());
    assert_eq!(attestor.name(), "unix");
    let uid = rustix::process::geteuid().as_raw();
    let got = values(&attestor.attest(me()).await.unwrap());
    assert!(got.contains(&format!("uid:{uid}")));
}
