//! The Kubernetes manifests in `deploy/`, as users apply them: each layout rendered with
//! `kubectl kustomize`, then checked against the seed's guide (names, kinds, its clean-up
//! list), against what our binaries read (configs parsed by our own loaders, arguments by our
//! CLIs, ports, paths and names agreeing across objects), against least privilege (the exact
//! permissions each service account gets), and validated against Kubernetes' schemas
//! (`kubernetes-validate`) and our CRDs' schemas.

#[path = "manifests/mesh.rs"]
mod mesh;
#[path = "manifests/objects.rs"]
mod objects;
#[path = "manifests/rbac.rs"]
mod rbac;
#[path = "manifests/schemas.rs"]
mod schemas;
#[path = "manifests/seed.rs"]
mod seed;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use spire_agent_app::NodeAttestorChoice as AgentAttestor;
use spire_agent_manager::TrustBundleSource;
use spire_controller::config::registrar::RegistrarMode;
use spire_controller::config::{ManagerArgs, ManagerConfig, RegistrarArgs, RegistrarConfig};
use spire_server_app::config::{NodeAttestorChoice as ServerAttestor, NotifierChoice};

use objects::{
    agent_config, argv, assert_health_probes, config_file, container, containers, find, get,
    http_probe_port, is_workload, names, render, server_config, volume_at,
};
use rbac::{assert_permissions, expected, permissions};
use seed::{CORRECTED_LINE, SEED_CLEANUP, SEED_DEPLOYMENT_LINE, delete_command, readme_cleanup};

// === the seed's layout (a) ===

#[test]
fn quickstart_2022_cleanup_list_names_objects_that_exist_and_leaves_nothing_behind() {
    let Some(objects) = render("quickstart-2022") else {
        return;
    };
    // The seed's deployment line finds nothing: the agent is a DaemonSet.
    assert!(find(&objects, "Deployment", Some("spire"), "spire-agent").is_none());
    get(&objects, "DaemonSet", Some("spire"), "spire-agent");

    let corrected = SEED_CLEANUP.replace(SEED_DEPLOYMENT_LINE, CORRECTED_LINE);
    let corrected: Vec<&str> = corrected.lines().collect();
    assert_eq!(
        readme_cleanup(),
        corrected,
        "deploy/README.md's clean-up list drifted from the seed's"
    );

    let mut deleted_namespaces = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for line in &corrected {
        let (kind, namespace, named) = delete_command(line);
        for name in named {
            get(&objects, &kind, namespace.as_deref(), &name);
            if kind == "Namespace" {
                deleted_namespaces.insert(name.clone());
            }
            deleted.insert((kind.clone(), name));
        }
    }
    for o in &objects {
        let kind = o["kind"].as_str().expect("kind").to_owned();
        let name = o["metadata"]["name"].as_str().expect("name").to_owned();
        let in_deleted_namespace = o["metadata"]["namespace"]
            .as_str()
            .is_some_and(|ns| deleted_namespaces.contains(ns));
        assert!(
            in_deleted_namespace || deleted.contains(&(kind.clone(), name.clone())),
            "the clean-up list leaves {kind} {name} behind"
        );
    }
}

#[test]
fn quickstart_2022_server_role_holds_the_registrar_rules_and_nothing_more() {
    const TRUST_ROLE: &str = "spire-server-trust-role";
    let Some(objects) = render("quickstart-2022") else {
        return;
    };
    assert_eq!(
        names(&objects, "ClusterRole"),
        BTreeSet::from([TRUST_ROLE, "spire-agent-cluster-role"])
    );
    // The server's k8s_psat (TokenReview, agent pod and node) and the registrar's watches and
    // writes, in the one cluster role the guide's clean-up deletes.
    let registrar = [
        "cluster core/pods list watch",
        "cluster core/nodes list watch",
        "cluster core/endpoints list watch",
        "cluster spiffeid.spiffe.io/spiffeids list watch create update",
        "cluster spiffeid.spiffe.io/spiffeids/status patch",
    ];
    let server = [
        "cluster authentication.k8s.io/tokenreviews create",
        "cluster core/pods get",
        "cluster core/nodes get",
        "spire core/configmaps get patch | trust-bundle",
    ];
    assert_permissions(
        &objects,
        "spire-server",
        &[&server[..], &registrar[..]].concat(),
    );
    let trust_role_only: Vec<Value> = objects
        .iter()
        .filter(|o| o["metadata"]["name"] == TRUST_ROLE || o["roleRef"]["name"] == TRUST_ROLE)
        .cloned()
        .collect();
    let folded = permissions(&trust_role_only, "spire", "spire-server");
    assert!(
        expected(&registrar).is_subset(&folded),
        "spire-server-trust-role lacks registrar rules: {folded:#?}"
    );
    assert_permissions(&objects, "spire-agent", &["cluster core/nodes/proxy get"]);

    // The registrar runs from the controller image with its own entrypoint, in CRD mode,
    // without the webhook, on the server's admin socket.
    let server_set = get(&objects, "StatefulSet", Some("spire"), "spire-server");
    let registrar_c = container(server_set, "k8s-workload-registrar");
    assert_eq!(
        registrar_c["command"],
        json!(["/opt/spire/bin/k8s-workload-registrar"])
    );
    let args = RegistrarArgs::try_parse_go(argv("k8s-workload-registrar", registrar_c))
        .expect("registrar args");
    let config = RegistrarConfig::parse(&config_file(
        &objects,
        server_set,
        "k8s-workload-registrar",
        &args.config,
    ))
    .expect("registrar config");
    assert!(
        config.ignored_keys.is_empty() && config.warnings.is_empty(),
        "{config:?}"
    );
    let RegistrarMode::Crd(crd) = &config.mode else {
        panic!("not CRD mode: {:?}", config.mode)
    };
    assert!(!crd.webhook.enabled);
    let server_conf = server_config(&objects, server_set);
    assert_eq!(
        volume_at(
            server_set,
            "k8s-workload-registrar",
            &config.server_socket_path
        ),
        volume_at(server_set, "spire-server", &server_conf.socket_path)
    );
    assert_eq!(config.server_socket_path, server_conf.socket_path);
    assert_eq!(config.trust_domain, server_conf.trust_domain);
    let metrics = crd
        .metrics_bind_address
        .as_deref()
        .expect("metrics on, for the liveness probe");
    let port = http_probe_port(registrar_c, "livenessProbe");
    assert_eq!(metrics.rsplit(':').next(), Some(port.to_string().as_str()));
}

// === today's layout (b) ===

#[test]
fn quickstart_runs_the_controller_manager_front_door_with_its_crds_webhook_and_rbac() {
    let Some(objects) = render("quickstart") else {
        return;
    };
    assert_eq!(
        names(&objects, "CustomResourceDefinition"),
        BTreeSet::from([
            "clusterspiffeids.spire.spiffe.io",
            "clusterfederatedtrustdomains.spire.spiffe.io",
            "clusterstaticentries.spire.spiffe.io"
        ])
    );

    let server_set = get(&objects, "Deployment", Some("spire"), "spire-server");
    let cm = container(server_set, "spire-controller-manager");
    let args =
        ManagerArgs::try_parse_go(argv("spire-controller-manager", cm)).expect("controller args");
    let path = args.config.clone().expect("--config");
    assert!(
        path.is_absolute(),
        "the image's working directory is /opt/spire, not /"
    );
    let config = ManagerConfig::parse(
        &config_file(&objects, server_set, "spire-controller-manager", &path),
        &args,
        |_| None,
    )
    .expect("controller config");
    assert!(
        config.ignored_keys.is_empty() && config.warnings.is_empty(),
        "{:?} {:?}",
        config.ignored_keys,
        config.warnings
    );
    assert!(!config.is_namespace_ignored("my-spire-app") && config.is_namespace_ignored("spire"));
    let server_conf = server_config(&objects, server_set);
    assert_eq!(config.trust_domain, server_conf.trust_domain);
    assert_eq!(
        volume_at(
            server_set,
            "spire-controller-manager",
            &config.spire_server_socket_path
        ),
        volume_at(server_set, "spire-server", &server_conf.socket_path)
    );
    assert_eq!(
        config.spire_server_socket_path.file_name(),
        server_conf.socket_path.file_name()
    );
    let probe = config
        .health
        .probe_bind_address
        .as_deref()
        .expect("a probe listener");
    assert!(
        probe.starts_with("0.0.0.0:") || probe.starts_with(':'),
        "the kubelet probes the pod IP: {probe}"
    );
    let port = http_probe_port(cm, "livenessProbe");
    assert_eq!(probe.rsplit(':').next(), Some(port.to_string().as_str()));
    assert_eq!(
        cm["livenessProbe"]["httpGet"]["path"],
        config.health.liveness_endpoint.as_str()
    );

    // The webhook configuration the controller keeps current, served through a Service that
    // reaches the controller's webhook port.
    let webhook = get(
        &objects,
        "ValidatingWebhookConfiguration",
        None,
        &config.validating_webhook_configuration_name,
    );
    for hook in webhook["webhooks"].as_array().expect("webhooks") {
        let svc = &hook["clientConfig"]["service"];
        let service = get(
            &objects,
            "Service",
            svc["namespace"].as_str(),
            svc["name"].as_str().expect("service name"),
        );
        assert_eq!(
            service["spec"]["selector"],
            server_set["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(
            service["spec"]["ports"][0]["targetPort"],
            u64::from(config.webhook.port)
        );
        assert!(
            cm["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["containerPort"] == u64::from(config.webhook.port))
        );
    }
    assert!(config.leader_election.enabled);
    assert_eq!(
        config.leader_election.lease_namespace.as_deref(),
        Some("spire")
    );

    assert_permissions(
        &objects,
        "spire-server",
        &[
            "cluster authentication.k8s.io/tokenreviews create",
            "cluster core/nodes get",
            "spire core/pods get",
            "spire core/configmaps get patch | spire-bundle",
            "cluster core/namespaces list watch",
            "cluster core/nodes list watch",
            "cluster core/pods list watch",
            "cluster core/endpoints list watch",
            "cluster spire.spiffe.io/clusterspiffeids list watch",
            "cluster spire.spiffe.io/clusterfederatedtrustdomains list watch",
            "cluster spire.spiffe.io/clusterstaticentries list watch",
            "cluster spire.spiffe.io/clusterspiffeids/status patch",
            "cluster spire.spiffe.io/clusterstaticentries/status patch",
            "cluster admissionregistration.k8s.io/validatingwebhookconfigurations get patch | spire-controller-manager-webhook",
            "spire coordination.k8s.io/leases get create update",
        ],
    );
    assert_permissions(&objects, "spire-agent", &["cluster core/nodes/proxy get"]);
}

// === both quickstarts ===

#[test]
fn quickstarts_wire_server_agent_and_csi_driver_together() {
    for (layout, kind) in [
        ("quickstart-2022", "StatefulSet"),
        ("quickstart", "Deployment"),
    ] {
        let Some(objects) = render(layout) else {
            return;
        };
        let server_set = get(&objects, kind, Some("spire"), "spire-server");
        let agent_set = get(&objects, "DaemonSet", Some("spire"), "spire-agent");
        let server = server_config(&objects, server_set);
        let agent = agent_config(&objects, agent_set);
        assert_health_probes(container(server_set, "spire-server"), &server.health);
        assert_health_probes(container(agent_set, "spire-agent"), &agent.health);
        assert_eq!(agent.trust_domain, server.trust_domain, "{layout}");

        // The agent dials the server's Service on its gRPC port.
        let service = get(&objects, "Service", Some("spire"), &agent.server_address);
        assert_eq!(
            service["spec"]["selector"],
            server_set["spec"]["selector"]["matchLabels"]
        );
        assert!(
            service["spec"]["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["port"] == u64::from(agent.server_port)
                    && p["targetPort"] == u64::from(server.bind_port))
        );

        // The bootstrap bundle: the notifier's ConfigMap and key, mounted where the agent reads.
        let notifier = server
            .plugins
            .notifiers
            .iter()
            .find_map(|n| match n {
                NotifierChoice::K8sBundle(c) => c.clusters.first(),
            })
            .expect("k8sbundle");
        get(
            &objects,
            "ConfigMap",
            Some(notifier.namespace.as_str()),
            &notifier.config_map,
        );
        let TrustBundleSource::Path { path, .. } = &agent.trust_bundle else {
            panic!("{layout}: no trust_bundle_path")
        };
        assert_eq!(
            volume_at(agent_set, "spire-agent", path)["configMap"]["name"],
            notifier.config_map.as_str()
        );
        assert_eq!(
            path.file_name().and_then(|f| f.to_str()),
            Some(notifier.config_map_key.as_str())
        );

        // k8s_psat: the agent's projected token is the one the server reviews, for the agent's
        // service account, in the same cluster.
        let AgentAttestor::K8sPsat(psat) = &agent.node_attestor else {
            panic!("{layout}: agent not k8s_psat")
        };
        let token = volume_at(agent_set, "spire-agent", &psat.token_path);
        let source = &token["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(
            source["path"],
            psat.token_path
                .file_name()
                .and_then(|f| f.to_str())
                .expect("file")
        );
        let cluster = server
            .plugins
            .node_attestors
            .iter()
            .find_map(|a| match a {
                ServerAttestor::K8sPsat(c) => c.clusters.get(&psat.cluster),
                _ => None,
            })
            .expect("the agent's cluster on the server");
        assert!(
            cluster
                .audience
                .iter()
                .any(|a| source["audience"] == a.as_str())
        );
        let account = format!(
            "spire:{}",
            agent_set["spec"]["template"]["spec"]["serviceAccountName"]
                .as_str()
                .expect("SA")
        );
        assert!(
            cluster.service_account_allow_list.contains(&account),
            "{layout}: {account} not allowed"
        );

        // The CSI driver shares the directory the agent's socket is in.
        let driver = container(agent_set, "spiffe-csi-driver");
        let args =
            spiffe_csi::Args::try_parse_go(argv("spiffe-csi-driver", driver)).expect("driver args");
        let env_names: Vec<_> = driver["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(
            env_names.contains(&args.node_id_env.as_str()),
            "the node ID comes from {}",
            args.node_id_env
        );
        args.clone()
            .into_config(|_| Some("node-1".to_owned()))
            .expect("driver config");
        let socket_dir = agent.socket_path.parent().expect("socket dir");
        assert_eq!(
            volume_at(agent_set, "spire-agent", socket_dir),
            volume_at(
                agent_set,
                "spiffe-csi-driver",
                &args.workload_api_socket_dir
            )
        );
        assert_eq!(
            volume_at(agent_set, "spiffe-csi-driver", &args.csi_socket_path)["hostPath"]["path"],
            "/var/lib/kubelet/plugins/csi.spiffe.io"
        );
    }
}

#[test]
fn every_container_runs_our_images_with_probes_resources_and_a_locked_down_context() {
    const OURS: [&str; 4] = [
        "ghcr.io/spire-rs/spire-server:0.1.0",
        "ghcr.io/spire-rs/spire-agent:0.1.0",
        "ghcr.io/spire-rs/spire-controller-manager:0.1.0",
        "ghcr.io/spire-rs/spiffe-csi-driver:0.1.0",
    ];
    const UPSTREAM: [&str; 2] = [
        "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.",
        "registry.k8s.io/sig-storage/livenessprobe:v2.",
    ];
    for layout in ["quickstart-2022", "quickstart"] {
        let Some(objects) = render(layout) else {
            return;
        };
        let all = containers(&objects);
        assert!(all.len() >= 6, "{layout}: {}", all.len());
        for (name, c) in all {
            let image = c["image"].as_str().expect("image");
            assert!(
                OURS.contains(&image) || UPSTREAM.iter().any(|u| image.starts_with(u)),
                "{layout} {name}: image {image}"
            );
            assert!(
                c["livenessProbe"].is_object(),
                "{layout} {name}: no liveness probe"
            );
            if let Some(port) = c["livenessProbe"]["httpGet"]["port"].as_u64() {
                assert!(
                    c["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["containerPort"] == port),
                    "{layout} {name}: probe port {port} not declared"
                );
            }
            let resources = &c["resources"];
            for field in [
                &resources["requests"]["cpu"],
                &resources["requests"]["memory"],
                &resources["limits"]["memory"],
            ] {
                assert!(field.is_string(), "{layout} {name}: resources {resources}");
            }
            let security = &c["securityContext"];
            assert_eq!(security["readOnlyRootFilesystem"], true, "{layout} {name}");
            if security["privileged"] == true {
                assert!(
                    name.ends_with("/spiffe-csi-driver"),
                    "{layout} {name} is privileged"
                );
            } else {
                assert_eq!(
                    security["allowPrivilegeEscalation"], false,
                    "{layout} {name}"
                );
                assert_eq!(
                    security["capabilities"]["drop"],
                    json!(["ALL"]),
                    "{layout} {name}"
                );
            }
        }
        // The server side runs as a non-root user.
        for o in objects
            .iter()
            .filter(|o| is_workload(o) && o["metadata"]["name"] == "spire-server")
        {
            assert_eq!(
                o["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
                true
            );
        }
    }
}
