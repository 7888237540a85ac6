//! Wire compatibility with the upstream API definitions.
//!
//! The upstream `.proto` files are never copied into this repository. They are read at test time
//! from the package directories of two crates resolved in this workspace:
//! * `spire-api` (dev-dependency) ships SPIRE's `spire-api-sdk/proto/**`;
//! * `spiffe` (pulled in by `spire-api`) ships the Workload API as `src/proto/workload.proto`.
//!
//! Both are compiled with protox and compared descriptor by descriptor with ours
//! ([`spire_proto::FILE_DESCRIPTOR_SET`]): every message (nested ones included), enum and service
//! we define must match upstream field by field and method by method, and every upstream symbol
//! in a package we implement must exist here. On top of that, golden round trips encode our prost
//! types and decode them with the `spire-api` crate's generated types (where it has them) or with
//! dynamic messages built from the upstream descriptors, and back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage as _, Value,
};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    ServiceDescriptorProto,
};
use spire_proto::spire::api::types as ours;

// ------------------------------------------------------------------------------------------------
// Locating the upstream packages
// ------------------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// Source directory of the registry package that `from_crate` depends on as `dep_crate`
/// (crate names with `_`), as resolved for this workspace.
///
/// First asks `cargo metadata --offline --locked` (works with any registry layout or source
/// replacement); if that is unavailable, reads the version from `Cargo.lock` and looks for the
/// unpacked package under `$CARGO_HOME/registry/src/*/`.
fn package_dir(package: &str, via: &[&str]) -> PathBuf {
    let dir = package_dir_from_metadata(via)
        .or_else(|| package_dir_from_lock(package))
        .unwrap_or_else(|| {
            panic!(
                "cannot find the `{package}` package sources; run `cargo fetch` \
                 (it is a dev-dependency chain of spire-proto: {via:?})"
            )
        });
    eprintln!("upstream `{package}` sources: {}", dir.display());
    dir
}

/// Follows `via` (crate names, starting at a dependency of spire-proto) through the resolve graph.
fn package_dir_from_metadata(via: &[&str]) -> Option<PathBuf> {
    static METADATA: OnceLock<Option<serde_json::Value>> = OnceLock::new();
    let meta = METADATA
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .args(["metadata", "--format-version", "1", "--offline", "--locked"])
                .arg("--manifest-path")
                .arg(workspace_root().join("Cargo.toml"))
                .output()
                .ok()?;
            if !out.status.success() {
                eprintln!(
                    "cargo metadata failed, falling back to Cargo.lock: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return None;
            }
            serde_json::from_slice(&out.stdout).ok()
        })
        .as_ref()?;

    let packages = meta["packages"].as_array()?;
    let nodes = meta["resolve"]["nodes"].as_array()?;
    let our_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut id = packages.iter().find(|p| {
        p["name"] == "spire-proto"
            && p["manifest_path"]
                .as_str()
                .is_some_and(|m| Path::new(m) == our_manifest)
    })?["id"]
        .as_str()?
        .to_owned();
    for crate_name in via {
        let node = nodes.iter().find(|n| n["id"] == id.as_str())?;
        id = node["deps"]
            .as_array()?
            .iter()
            .find(|d| d["name"] == *crate_name)?["pkg"]
            .as_str()?
            .to_owned();
    }
    let manifest = packages.iter().find(|p| p["id"] == id.as_str())?["manifest_path"].as_str()?;
    Path::new(manifest).parent().map(Path::to_path_buf)
}

fn package_dir_from_lock(package: &str) -> Option<PathBuf> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).ok()?;
    let mut versions: Vec<String> = lock
        .split("[[package]]")
        .filter_map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix(key)
                        .and_then(|r| r.trim().strip_prefix('='))
                        .map(|v| v.trim().trim_matches('"').to_owned())
                })
            };
            (field("name")? == package).then(|| field("version"))?
        })
        .collect();
    // Prefer the newest when several versions are locked.
    versions.sort_by_key(|v| {
        v.split('.')
            .map(|n| n.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let registries = std::fs::read_dir(cargo_home.join("registry/src")).ok()?;
    let registries: Vec<PathBuf> = registries.filter_map(|e| Some(e.ok()?.path())).collect();
    versions.iter().rev().find_map(|version| {
        registries
            .iter()
            .map(|r| r.join(format!("{package}-{version}")))
            .find(|d| d.join("Cargo.toml").is_file())
    })
}

fn proto_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable proto dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Upstream SPIRE API: every `.proto` in the `spire-api` package's `spire-api-sdk/proto`.
fn upstream_spire() -> &'static FileDescriptorSet {
    static FDS: OnceLock<FileDescriptorSet> = OnceLock::new();
    FDS.get_or_init(|| {
        let root = package_dir("spire-api", &["spire_api"]).join("spire-api-sdk/proto");
        let files = proto_files_under(&root.join("spire/api"));
        assert!(
            files.len() >= 20,
            "expected the spire-api-sdk protos under {}, found {files:?}",
            root.display()
        );
        protox::compile(&files, [&root]).expect("upstream spire-api-sdk protos compile")
    })
}

/// Upstream Workload API: `workload.proto` from the `spiffe` package.
fn upstream_workload() -> &'static FileDescriptorSet {
    static FDS: OnceLock<FileDescriptorSet> = OnceLock::new();
    FDS.get_or_init(|| {
        let root = package_dir("spiffe", &["spire_api", "spiffe"]).join("src/proto");
        protox::compile([root.join("workload.proto")], [&root])
            .expect("upstream workload.proto compiles")
    })
}

fn our_fds() -> FileDescriptorSet {
    FileDescriptorSet::decode(spire_proto::FILE_DESCRIPTOR_SET).expect("valid descriptor set")
}

// ------------------------------------------------------------------------------------------------
// Descriptor comparison
// ------------------------------------------------------------------------------------------------

/// All named symbols of a descriptor set by fully qualified name (`.pkg.Outer.Inner`).
#[derive(Default)]
struct Index {
    messages: BTreeMap<String, DescriptorProto>,
    enums: BTreeMap<String, EnumDescriptorProto>,
    services: BTreeMap<String, ServiceDescriptorProto>,
    /// Proto package of every symbol above.
    package: BTreeMap<String, String>,
}

impl Index {
    fn new(fds: &FileDescriptorSet) -> Self {
        let mut ix = Self::default();
        for file in &fds.file {
            let pkg = file.package().to_owned();
            let prefix = if pkg.is_empty() {
                String::new()
            } else {
                format!(".{pkg}")
            };
            for m in &file.message_type {
                ix.add_message(&prefix, m, &pkg);
            }
            for e in &file.enum_type {
                ix.add_enum(&prefix, e, &pkg);
            }
            for s in &file.service {
                let name = format!("{prefix}.{}", s.name());
                ix.package.insert(name.clone(), pkg.clone());
                ix.services.insert(name, s.clone());
            }
        }
        ix
    }

    fn add_message(&mut self, prefix: &str, m: &DescriptorProto, pkg: &str) {
        let name = format!("{prefix}.{}", m.name());
        for nested in &m.nested_type {
            self.add_message(&name, nested, pkg);
        }
        for e in &m.enum_type {
            self.add_enum(&name, e, pkg);
        }
        self.package.insert(name.clone(), pkg.to_owned());
        self.messages.insert(name, m.clone());
    }

    fn add_enum(&mut self, prefix: &str, e: &EnumDescriptorProto, pkg: &str) {
        let name = format!("{prefix}.{}", e.name());
        self.package.insert(name.clone(), pkg.to_owned());
        self.enums.insert(name, e.clone());
    }
}

/// Everything about a field that affects the binary or JSON wire format.
fn field_facts(msg: &DescriptorProto, f: &FieldDescriptorProto) -> String {
    let oneof = f
        .oneof_index
        .filter(|_| !f.proto3_optional())
        .and_then(|i| msg.oneof_decl.get(usize::try_from(i).ok()?))
        .map_or("-", |o| o.name());
    format!(
        "name={} type={:?} type_name={} label={:?} oneof={oneof} proto3_optional={} json_name={} \
         packed={:?}",
        f.name(),
        f.r#type(),
        f.type_name(),
        f.label(),
        f.proto3_optional(),
        f.json_name(),
        f.options.as_ref().and_then(|o| o.packed),
    )
}

/// Differences between our definitions and upstream's, for our symbols whose package satisfies
/// `in_scope`. Also reports upstream symbols in our packages that we lack.
fn compare(ours: &Index, upstream: &Index, in_scope: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut errs = Vec::new();
    let scoped = |ix: &Index, name: &str| ix.package.get(name).is_some_and(|p| in_scope(p));

    for (name, m) in ours.messages.iter().filter(|(n, _)| scoped(ours, n)) {
        let Some(up) = upstream.messages.get(name) else {
            errs.push(format!("message {name}: not defined upstream"));
            continue;
        };
        let map_entry = |d: &DescriptorProto| d.options.as_ref().is_some_and(|o| o.map_entry());
        if map_entry(m) != map_entry(up) {
            errs.push(format!("message {name}: map_entry differs"));
        }
        let by_number = |d: &DescriptorProto| -> BTreeMap<i32, String> {
            d.field
                .iter()
                .map(|f| (f.number(), field_facts(d, f)))
                .collect()
        };
        let (mine, theirs) = (by_number(m), by_number(up));
        for number in mine.keys().chain(theirs.keys()).collect::<BTreeSet<_>>() {
            match (mine.get(number), theirs.get(number)) {
                (Some(a), Some(b)) if a != b => errs.push(format!(
                    "message {name} field #{number}:\n    ours:     {a}\n    upstream: {b}"
                )),
                (Some(a), None) => errs.push(format!(
                    "message {name} field #{number}: only ours has it ({a})"
                )),
                (None, Some(b)) => errs.push(format!(
                    "message {name} field #{number}: missing here, upstream has {b}"
                )),
                _ => {}
            }
        }
        let oneofs = |d: &DescriptorProto| -> BTreeSet<String> {
            // Synthetic oneofs of proto3 `optional` fields are covered by proto3_optional.
            d.oneof_decl
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    d.field.iter().any(|f| {
                        !f.proto3_optional()
                            && f.oneof_index.and_then(|x| usize::try_from(x).ok()) == Some(*i)
                    })
                })
                .map(|(_, o)| o.name().to_owned())
                .collect()
        };
        if oneofs(m) != oneofs(up) {
            errs.push(format!(
                "message {name}: oneofs ours {:?} upstream {:?}",
                oneofs(m),
                oneofs(up)
            ));
        }
    }

    for (name, e) in ours.enums.iter().filter(|(n, _)| scoped(ours, n)) {
        let Some(up) = upstream.enums.get(name) else {
            errs.push(format!("enum {name}: not defined upstream"));
            continue;
        };
        let values = |d: &EnumDescriptorProto| -> BTreeSet<(i32, String)> {
            d.value
                .iter()
                .map(|v| (v.number(), v.name().to_owned()))
                .collect()
        };
        if values(e) != values(up) {
            errs.push(format!(
                "enum {name}: values ours {:?} upstream {:?}",
                values(e),
                values(up)
            ));
        }
    }

    for (name, s) in ours.services.iter().filter(|(n, _)| scoped(ours, n)) {
        let Some(up) = upstream.services.get(name) else {
            errs.push(format!("service {name}: not defined upstream"));
            continue;
        };
        let methods = |d: &ServiceDescriptorProto| -> BTreeMap<String, String> {
            d.method
                .iter()
                .map(|m| {
                    let facts = format!(
                        "({}{}) returns ({}{})",
                        if m.client_streaming() { "stream " } else { "" },
                        m.input_type(),
                        if m.server_streaming() { "stream " } else { "" },
                        m.output_type(),
                    );
                    (m.name().to_owned(), facts)
                })
                .collect()
        };
        let (mine, theirs) = (methods(s), methods(up));
        for method in mine.keys().chain(theirs.keys()).collect::<BTreeSet<_>>() {
            match (mine.get(method), theirs.get(method)) {
                (Some(a), Some(b)) if a != b => errs.push(format!(
                    "rpc {name}/{method}:\n    ours:     {a}\n    upstream: {b}"
                )),
                (Some(_), None) => errs.push(format!("rpc {name}/{method}: not defined upstream")),
                (None, Some(b)) => errs.push(format!("rpc {name}/{method} {b}: missing here")),
                _ => {}
            }
        }
    }

    // Completeness: upstream symbols in the packages we implement.
    let our_packages: BTreeSet<&String> = ours.package.values().filter(|p| in_scope(p)).collect();
    for (name, pkg) in &upstream.package {
        if our_packages.contains(pkg) && !ours.package.contains_key(name) {
            errs.push(format!(
                "{name} (package {pkg:?}): defined upstream, missing here"
            ));
        }
    }
    errs
}

/// Fields SPIRE added after the spire-api-sdk copy shipped in the `spire-api` crate (≈ SPIRE
/// 1.10); each is a fact of spire-api-sdk 1.15. Only these
/// exact "only ours has it" differences are tolerated.
const NEWER_THAN_UPSTREAM: &[&str] = &[
    "message .spire.api.server.entry.v1.EntryRevision field #3: only ours has it (name=created_at type=Int64 ",
    "message .spire.agent.debug.v1.GetInfoResponse field #5: only ours has it (name=cached_x509_svids_count type=Int32 ",
    "message .spire.agent.debug.v1.GetInfoResponse field #6: only ours has it (name=cached_jwt_svids_count type=Int32 ",
    "message .spire.agent.debug.v1.GetInfoResponse field #7: only ours has it (name=cached_svidstore_x509_svids_count type=Int32 ",
    "message .spire.api.server.localauthority.v1.AuthorityState field #3: only ours has it (name=upstream_authority_subject_key_id type=String ",
    "message .spire.api.server.localauthority.v1.TaintX509UpstreamAuthorityResponse field #1: only ours has it (name=upstream_authority_subject_key_id type=String ",
    "message .spire.api.server.localauthority.v1.RevokeX509UpstreamAuthorityResponse field #1: only ours has it (name=upstream_authority_subject_key_id type=String ",
];

/// [`compare`] over the SPIRE packages, minus the [`NEWER_THAN_UPSTREAM`] facts.
fn compare_spire(ours: &Index, upstream: &Index) -> Vec<String> {
    compare(ours, upstream, &is_spire_package)
        .into_iter()
        .filter(|e| !NEWER_THAN_UPSTREAM.iter().any(|newer| e.starts_with(newer)))
        .collect()
}

fn is_spire_package(pkg: &str) -> bool {
    pkg.starts_with("spire.api.") || pkg.starts_with("spire.agent.")
}

fn is_workload_package(pkg: &str) -> bool {
    pkg.is_empty()
}

fn report(errs: &[String]) -> String {
    errs.iter().fold(String::new(), |mut s, e| {
        let _ = writeln!(s, "  - {e}");
        s
    })
}

#[test]
fn spire_api_descriptors_match_upstream() {
    let ours = Index::new(&our_fds());
    let upstream = Index::new(upstream_spire());
    let errs = compare_spire(&ours, &upstream);
    assert!(
        errs.is_empty(),
        "our protos differ from spire-api-sdk:\n{}",
        report(&errs)
    );

    // Guard against a vacuous pass: the packages we promise are all there and were compared.
    let packages: BTreeSet<&str> = ours
        .package
        .values()
        .map(String::as_str)
        .filter(|p| is_spire_package(p))
        .collect();
    let expected: BTreeSet<&str> = [
        "spire.api.types",
        "spire.agent.debug.v1",
        "spire.api.agent.logger.v1",
        "spire.api.server.agent.v1",
        "spire.api.server.bundle.v1",
        "spire.api.server.debug.v1",
        "spire.api.server.entry.v1",
        "spire.api.server.localauthority.v1",
        "spire.api.server.logger.v1",
        "spire.api.server.svid.v1",
        "spire.api.server.trustdomain.v1",
    ]
    .into();
    assert_eq!(packages, expected);
    assert_eq!(
        ours.services
            .keys()
            .filter(|s| s.starts_with(".spire."))
            .count(),
        10
    );
}

#[test]
fn workload_api_descriptors_match_upstream() {
    let ours = Index::new(&our_fds());
    let upstream = Index::new(upstream_workload());
    let errs = compare(&ours, &upstream, &is_workload_package);
    assert!(
        errs.is_empty(),
        "our workload.proto differs from the spiffe crate's:\n{}",
        report(&errs)
    );
    assert!(ours.services.contains_key(".SpiffeWorkloadAPI"));
}

fn file_index(fds: &FileDescriptorSet, name: &str) -> usize {
    fds.file
        .iter()
        .position(|f| f.name() == name)
        .unwrap_or_else(|| panic!("{name} in our descriptor set"))
}

/// Top-level message `m` of file `f`.
fn message_mut<'a>(fds: &'a mut FileDescriptorSet, f: &str, m: &str) -> &'a mut DescriptorProto {
    let fi = file_index(fds, f);
    fds.file[fi]
        .message_type
        .iter_mut()
        .find(|x| x.name() == m)
        .unwrap_or_else(|| panic!("{m} in {f}"))
}

fn field_mut<'a>(d: &'a mut DescriptorProto, name: &str) -> &'a mut FieldDescriptorProto {
    d.field
        .iter_mut()
        .find(|x| x.name() == name)
        .unwrap_or_else(|| panic!("field {name}"))
}

/// The comparison itself must fail on each kind of drift, or the tests above prove nothing.
#[test]
fn comparison_detects_every_kind_of_drift() {
    let upstream = Index::new(upstream_spire());
    let base = our_fds();
    type Mutation = Box<dyn Fn(&mut FileDescriptorSet)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "field number",
            Box::new(|fds| {
                let d = message_mut(fds, "spire/api/types/entry.proto", "Entry");
                field_mut(d, "hint").number = Some(16);
            }),
        ),
        (
            "field name",
            Box::new(|fds| {
                let d = message_mut(fds, "spire/api/types/bundle.proto", "Bundle");
                field_mut(d, "refresh_hint").name = Some("refresh_hint_secs".into());
            }),
        ),
        (
            "field type",
            Box::new(|fds| {
                let d = message_mut(fds, "spire/api/types/entry.proto", "Entry");
                field_mut(d, "x509_svid_ttl")
                    .set_type(prost_types::field_descriptor_proto::Type::Int64);
            }),
        ),
        (
            "field label",
            Box::new(|fds| {
                let d = message_mut(fds, "spire/api/types/agent.proto", "Agent");
                field_mut(d, "selectors")
                    .set_label(prost_types::field_descriptor_proto::Label::Optional);
            }),
        ),
        (
            "message type name",
            Box::new(|fds| {
                let d = message_mut(fds, "spire/api/types/x509svid.proto", "X509SVID");
                field_mut(d, "id").type_name = Some(".spire.api.types.Selector".into());
            }),
        ),
        (
            "oneof membership",
            Box::new(|fds| {
                let d = message_mut(
                    fds,
                    "spire/api/types/federationrelationship.proto",
                    "FederationRelationship",
                );
                field_mut(d, "https_spiffe").oneof_index = None;
            }),
        ),
        (
            "enum value",
            Box::new(|fds| {
                let d = message_mut(
                    fds,
                    "spire/api/types/status.proto",
                    "PermissionDeniedDetails",
                );
                d.enum_type[0].value[4].number = Some(9);
            }),
        ),
        (
            "rpc streaming",
            Box::new(|fds| {
                let f = file_index(fds, "spire/api/server/entry/v1/entry.proto");
                let rpc = fds.file[f].service[0]
                    .method
                    .iter_mut()
                    .find(|x| x.name() == "SyncAuthorizedEntries")
                    .expect("rpc");
                rpc.client_streaming = Some(false);
            }),
        ),
        (
            "rpc input type",
            Box::new(|fds| {
                let f = file_index(fds, "spire/api/server/svid/v1/svid.proto");
                fds.file[f].service[0].method[0].input_type =
                    Some(".spire.api.server.svid.v1.MintJWTSVIDRequest".into());
            }),
        ),
        (
            "missing message",
            Box::new(|fds| {
                let f = file_index(fds, "spire/api/types/bundle.proto");
                fds.file[f]
                    .message_type
                    .retain(|m| m.name() != "BundleMask");
            }),
        ),
        (
            "missing nested message",
            Box::new(|fds| {
                message_mut(
                    fds,
                    "spire/api/server/agent/v1/agent.proto",
                    "AttestAgentResponse",
                )
                .nested_type
                .clear();
            }),
        ),
    ];

    assert!(
        compare_spire(&Index::new(&base), &upstream).is_empty(),
        "baseline must match"
    );
    for (what, mutate) in cases {
        let mut fds = base.clone();
        mutate(&mut fds);
        let errs = compare_spire(&Index::new(&fds), &upstream);
        assert!(!errs.is_empty(), "a change of {what} went undetected");
        eprintln!("{what}: detected\n{}", report(&errs));
    }
}

// ------------------------------------------------------------------------------------------------
// Golden round trips
// ------------------------------------------------------------------------------------------------

/// Encodes `ours`, decodes it with `upstream`'s prost type, checks it, re-encodes and decodes back.
fn via_upstream_type<O, U>(ours: &O, check: impl FnOnce(&U)) -> U
where
    O: prost::Message + Default + PartialEq + std::fmt::Debug,
    U: prost::Message + Default,
{
    let bytes = ours.encode_to_vec();
    let theirs = U::decode(bytes.as_slice()).expect("upstream type decodes our bytes");
    check(&theirs);
    let back_bytes = theirs.encode_to_vec();
    assert_eq!(back_bytes, bytes, "byte-identical re-encoding");
    let back = O::decode(back_bytes.as_slice()).expect("we decode upstream bytes");
    assert_eq!(&back, ours);
    theirs
}

fn upstream_message(name: &str) -> MessageDescriptor {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::from_file_descriptor_set(upstream_spire().clone())
            .expect("upstream descriptor pool")
    })
    .get_message_by_name(name)
    .unwrap_or_else(|| panic!("upstream defines {name}"))
}

/// Encodes `ours`, decodes it as a dynamic message of upstream's `name`, requires every upstream
/// field to be populated, re-encodes and decodes back.
fn via_upstream_descriptor<O>(ours: &O, name: &str) -> DynamicMessage
where
    O: prost::Message + Default + PartialEq + std::fmt::Debug,
{
    let desc = upstream_message(name);
    let bytes = ours.encode_to_vec();
    let dynamic = DynamicMessage::decode(desc.clone(), bytes.as_slice()).expect("decodes");
    let unset: Vec<String> = desc
        .fields()
        .filter(|f| !dynamic.has_field(f))
        .map(|f| f.name().to_owned())
        .collect();
    assert!(
        unset.is_empty(),
        "{name}: golden value leaves {unset:?} unset"
    );
    let back_bytes = dynamic.encode_to_vec();
    assert_eq!(back_bytes, bytes, "{name}: byte-identical re-encoding");
    let back = O::decode(back_bytes.as_slice()).expect("we decode upstream bytes");
    assert_eq!(&back, ours);
    dynamic
}

fn get(m: &DynamicMessage, field: &str) -> Value {
    m.get_field_by_name(field)
        .unwrap_or_else(|| panic!("{} has {field}", m.descriptor().full_name()))
        .into_owned()
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn msg_of(v: &Value) -> &DynamicMessage {
    v.as_message().expect("message value")
}

fn list_of(v: &Value) -> &[Value] {
    v.as_list().expect("list value")
}

fn spiffe_id(td: &str, path: &str) -> ours::Spiffeid {
    ours::Spiffeid {
        trust_domain: td.into(),
        path: path.into(),
    }
}

fn assert_spiffe_id(v: &Value, td: &str, path: &str) {
    assert_eq!(get(msg_of(v), "trust_domain"), s(td));
    assert_eq!(get(msg_of(v), "path"), s(path));
}

#[test]
fn golden_bytes_of_small_messages() {
    // Hand-assembled protobuf encodings: tag = (number << 3) | wire type.
    let id = spiffe_id("example.org", "/w");
    let mut expected = vec![0x0a, 11];
    expected.extend_from_slice(b"example.org");
    expected.extend_from_slice(&[0x12, 2]);
    expected.extend_from_slice(b"/w");
    assert_eq!(id.encode_to_vec(), expected);

    let denied = ours::PermissionDeniedDetails {
        reason: ours::permission_denied_details::Reason::AgentBanned.into(),
    };
    assert_eq!(denied.encode_to_vec(), [0x08, 4]);
    let dynamic = via_upstream_descriptor(&denied, "spire.api.types.PermissionDeniedDetails");
    let reason = upstream_message("spire.api.types.PermissionDeniedDetails")
        .get_field_by_name("reason")
        .expect("reason field");
    let number = get(&dynamic, "reason").as_enum_number().expect("enum");
    let kind = reason.kind();
    let name = kind
        .as_enum()
        .and_then(|e| e.get_value(number))
        .expect("known value");
    assert_eq!(name.name(), "AGENT_BANNED");

    let entry = ours::Entry {
        revision_number: 300,
        store_svid: true,
        ..Default::default()
    };
    // 300 = varint ac 02; store_svid = field 12 varint.
    assert_eq!(entry.encode_to_vec(), [0x58, 0xac, 0x02, 0x60, 1]);
}

#[test]
fn x509svid_round_trips_through_spire_api_types() {
    use spire_api::pb::spire::api::types as theirs;
    let svid = ours::X509svid {
        cert_chain: vec![
            vec![0x30, 0x82, 0x01, 0x0a, 0xff],
            vec![0x30, 0x03, 0x02, 0x01, 0x01],
        ],
        id: Some(spiffe_id("example.org", "/ns/default/sa/web")),
        expires_at: 1_900_000_000,
        hint: "internal".into(),
    };
    via_upstream_type::<_, theirs::X509svid>(&svid, |t| {
        let chain: Vec<Vec<u8>> = t.cert_chain.iter().map(|c| c.to_vec()).collect();
        assert_eq!(chain, svid.cert_chain);
        let id = t.id.as_ref().expect("id");
        assert_eq!(
            (id.trust_domain.as_str(), id.path.as_str()),
            ("example.org", "/ns/default/sa/web")
        );
        assert_eq!(t.expires_at, 1_900_000_000);
        assert_eq!(t.hint, "internal");
    });
    let dynamic = via_upstream_descriptor(&svid, "spire.api.types.X509SVID");
    assert_eq!(list_of(&get(&dynamic, "cert_chain")).len(), 2);
}

#[test]
fn jwtsvid_and_selectors_round_trip_through_spire_api_types() {
    use spire_api::pb::spire::api::types as theirs;
    let jwt = ours::Jwtsvid {
        token: "eyJhbGciOiJFUzI1NiJ9.e30.sig".into(),
        id: Some(spiffe_id("example.org", "/api")),
        expires_at: 1_800_000_300,
        issued_at: 1_800_000_000,
        hint: "h".into(),
    };
    via_upstream_type::<_, theirs::Jwtsvid>(&jwt, |t| {
        assert_eq!(t.token, jwt.token);
        assert_eq!(t.id.as_ref().map(|i| i.path.as_str()), Some("/api"));
        assert_eq!((t.expires_at, t.issued_at), (1_800_000_300, 1_800_000_000));
        assert_eq!(t.hint, "h");
    });

    let matcher = ours::SelectorMatch {
        selectors: vec![
            ours::Selector {
                r#type: "k8s".into(),
                value: "ns:default".into(),
            },
            ours::Selector {
                r#type: "unix".into(),
                value: "uid:1000".into(),
            },
        ],
        r#match: ours::selector_match::MatchBehavior::MatchSuperset.into(),
    };
    via_upstream_type::<_, theirs::SelectorMatch>(&matcher, |t| {
        let pairs: Vec<(&str, &str)> = t
            .selectors
            .iter()
            .map(|s| (s.r#type.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(pairs, [("k8s", "ns:default"), ("unix", "uid:1000")]);
        assert_eq!(
            t.r#match(),
            theirs::selector_match::MatchBehavior::MatchSuperset
        );
    });
}

#[test]
fn entry_with_every_field_round_trips_through_upstream_descriptor() {
    let entry = ours::Entry {
        id: "0f4b7c1e-8a7f-4c55-9a51-2a6c1f1d6e00".into(),
        spiffe_id: Some(spiffe_id("example.org", "/ns/default/sa/web")),
        parent_id: Some(spiffe_id(
            "example.org",
            "/spire/agent/k8s_psat/demo/node-1",
        )),
        selectors: vec![
            ours::Selector {
                r#type: "k8s".into(),
                value: "ns:default".into(),
            },
            ours::Selector {
                r#type: "k8s".into(),
                value: "sa:web".into(),
            },
        ],
        x509_svid_ttl: 3600,
        federates_with: vec!["partner.org".into(), "other.org".into()],
        admin: true,
        downstream: true,
        expires_at: 2_000_000_000,
        dns_names: vec!["web.default.svc".into(), "web".into()],
        revision_number: 7,
        store_svid: true,
        jwt_svid_ttl: 300,
        hint: "external".into(),
        created_at: 1_700_000_000,
    };
    let d = via_upstream_descriptor(&entry, "spire.api.types.Entry");
    assert_eq!(get(&d, "id"), s("0f4b7c1e-8a7f-4c55-9a51-2a6c1f1d6e00"));
    assert_spiffe_id(&get(&d, "spiffe_id"), "example.org", "/ns/default/sa/web");
    assert_spiffe_id(
        &get(&d, "parent_id"),
        "example.org",
        "/spire/agent/k8s_psat/demo/node-1",
    );
    let selectors: Vec<(Value, Value)> = list_of(&get(&d, "selectors"))
        .iter()
        .map(|v| (get(msg_of(v), "type"), get(msg_of(v), "value")))
        .collect();
    assert_eq!(
        selectors,
        [(s("k8s"), s("ns:default")), (s("k8s"), s("sa:web"))]
    );
    assert_eq!(get(&d, "x509_svid_ttl"), Value::I32(3600));
    assert_eq!(
        get(&d, "federates_with"),
        Value::List(vec![s("partner.org"), s("other.org")])
    );
    assert_eq!(get(&d, "admin"), Value::Bool(true));
    assert_eq!(get(&d, "downstream"), Value::Bool(true));
    assert_eq!(get(&d, "expires_at"), Value::I64(2_000_000_000));
    assert_eq!(
        get(&d, "dns_names"),
        Value::List(vec![s("web.default.svc"), s("web")])
    );
    assert_eq!(get(&d, "revision_number"), Value::I64(7));
    assert_eq!(get(&d, "store_svid"), Value::Bool(true));
    assert_eq!(get(&d, "jwt_svid_ttl"), Value::I32(300));
    assert_eq!(get(&d, "hint"), s("external"));
    assert_eq!(get(&d, "created_at"), Value::I64(1_700_000_000));
}

#[test]
fn bundle_round_trips_through_upstream_descriptor() {
    let bundle = ours::Bundle {
        trust_domain: "example.org".into(),
        x509_authorities: vec![
            ours::X509Certificate {
                asn1: vec![0x30, 0x82, 0x01, 0x00],
                tainted: true,
            },
            ours::X509Certificate {
                asn1: vec![0x30, 0x01],
                tainted: false,
            },
        ],
        jwt_authorities: vec![ours::JwtKey {
            public_key: vec![0x30, 0x59, 0x30, 0x13],
            key_id: "kid-1".into(),
            expires_at: 1_900_000_000,
            tainted: true,
        }],
        refresh_hint: 300,
        sequence_number: u64::MAX,
    };
    let d = via_upstream_descriptor(&bundle, "spire.api.types.Bundle");
    assert_eq!(get(&d, "trust_domain"), s("example.org"));
    let x509 = list_of(&get(&d, "x509_authorities")).to_vec();
    assert_eq!(x509.len(), 2);
    assert_eq!(
        get(msg_of(&x509[0]), "asn1"),
        Value::Bytes(vec![0x30, 0x82, 0x01, 0x00].into())
    );
    assert_eq!(get(msg_of(&x509[0]), "tainted"), Value::Bool(true));
    let jwt = list_of(&get(&d, "jwt_authorities")).to_vec();
    let jwt = msg_of(&jwt[0]);
    assert_eq!(
        get(jwt, "public_key"),
        Value::Bytes(vec![0x30, 0x59, 0x30, 0x13].into())
    );
    assert_eq!(get(jwt, "key_id"), s("kid-1"));
    assert_eq!(get(jwt, "expires_at"), Value::I64(1_900_000_000));
    assert_eq!(get(jwt, "tainted"), Value::Bool(true));
    assert_eq!(get(&d, "refresh_hint"), Value::I64(300));
    assert_eq!(get(&d, "sequence_number"), Value::U64(u64::MAX));
}

#[test]
fn agent_round_trips_through_upstream_descriptor() {
    let agent = ours::Agent {
        id: Some(spiffe_id("example.org", "/spire/agent/join_token/abc")),
        attestation_type: "join_token".into(),
        x509svid_serial_number: "13373378716512187232".into(),
        x509svid_expires_at: 1_800_003_600,
        selectors: vec![ours::Selector {
            r#type: "k8s_psat".into(),
            value: "cluster:demo".into(),
        }],
        banned: true,
        can_reattest: true,
    };
    let d = via_upstream_descriptor(&agent, "spire.api.types.Agent");
    assert_spiffe_id(&get(&d, "id"), "example.org", "/spire/agent/join_token/abc");
    assert_eq!(get(&d, "attestation_type"), s("join_token"));
    assert_eq!(get(&d, "x509svid_serial_number"), s("13373378716512187232"));
    assert_eq!(get(&d, "x509svid_expires_at"), Value::I64(1_800_003_600));
    let sel = list_of(&get(&d, "selectors")).to_vec();
    assert_eq!(get(msg_of(&sel[0]), "type"), s("k8s_psat"));
    assert_eq!(get(msg_of(&sel[0]), "value"), s("cluster:demo"));
    assert_eq!(get(&d, "banned"), Value::Bool(true));
    assert_eq!(get(&d, "can_reattest"), Value::Bool(true));
}

#[test]
fn oneof_messages_round_trip_through_upstream_descriptor() {
    use spire_proto::spire::api::server::agent::v1 as agent;
    let resp = agent::AttestAgentResponse {
        step: Some(agent::attest_agent_response::Step::Result(
            agent::attest_agent_response::Result {
                svid: Some(ours::X509svid {
                    cert_chain: vec![vec![1, 2, 3]],
                    id: Some(spiffe_id("example.org", "/spire/agent/x509pop/ab")),
                    expires_at: 5,
                    hint: String::new(),
                }),
                reattestable: true,
            },
        )),
    };
    let desc = upstream_message("spire.api.server.agent.v1.AttestAgentResponse");
    let d = DynamicMessage::decode(desc, resp.encode_to_vec().as_slice()).expect("decodes");
    let result = get(&d, "result");
    assert_eq!(get(msg_of(&result), "reattestable"), Value::Bool(true));
    assert!(!d.has_field_by_name("challenge"));
    let back = agent::AttestAgentResponse::decode(d.encode_to_vec().as_slice()).expect("back");
    assert_eq!(back, resp);

    let fr = ours::FederationRelationship {
        trust_domain: "partner.org".into(),
        bundle_endpoint_url: "https://partner.org:8443".into(),
        bundle_endpoint_profile: Some(
            ours::federation_relationship::BundleEndpointProfile::HttpsSpiffe(
                ours::HttpsspiffeProfile {
                    endpoint_spiffe_id: "spiffe://partner.org/spire/server".into(),
                },
            ),
        ),
        trust_domain_bundle: Some(ours::Bundle {
            trust_domain: "partner.org".into(),
            ..Default::default()
        }),
    };
    let desc = upstream_message("spire.api.types.FederationRelationship");
    let d = DynamicMessage::decode(desc, fr.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(
        get(msg_of(&get(&d, "https_spiffe")), "endpoint_spiffe_id"),
        s("spiffe://partner.org/spire/server")
    );
    assert!(!d.has_field_by_name("https_web"));
    let back = ours::FederationRelationship::decode(d.encode_to_vec().as_slice()).expect("back");
    assert_eq!(back, fr);
}
