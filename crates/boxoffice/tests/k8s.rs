//! The Kubernetes manifests, rendered as `kubectl apply -k` renders them, checked against
//! the services' own configuration: a port, probe path or secret name that drifts from
//! what the binary reads fails here instead of in a rollout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

const OVERLAYS: [&str; 2] = ["local", "production"];
const SERVICES: [&str; 3] = ["waitroom", "gateway", "scheduler"];

/// Secrets the production overlay leaves to the operator (its kustomization.yaml shows
/// how to create them), with the keys the pods read from them.
const EXTERNAL_SECRETS: [(&str, &[&str]); 4] = [
    (
        "boxoffice-secrets",
        &["database-url", "gateway-admin-api-key", "waitroom-admin-api-key", "ticket-secret", "fan-id-secret"],
    ),
    ("boxoffice-signing-keys", &["k1.private.pem", "k1.public.pem"]),
    ("boxoffice-ticket-keys", &["t1.private.pem", "t1.public.pem"]),
    ("boxoffice-receipt-keys", &["r1.private.pem", "r1.public.pem"]),
];

#[test]
fn every_overlay_renders_manifests_that_match_the_services_configuration() {
    let defaults = Defaults::read();
    for overlay in OVERLAYS {
        let rendered = Rendered::of(overlay);
        let check = Check { overlay, rendered: &rendered, defaults: &defaults };
        check.deployments_run_their_service();
        check.migration_job_runs_migrate();
        check.one_image_everywhere();
        check.references_resolve();
        check.services_select_pods_and_ports();
        check.autoscalers_and_budgets_target_deployments();
        check.signing_keys_reach_only_the_signer();
        check.purpose_keys_reach_only("TICKETS", &["gateway", "scheduler"]);
        check.purpose_keys_reach_only("RECEIPTS", &["waitroom"]);
    }
}

/// The image runs as the user the pods are told to run as, so `runAsNonRoot` holds.
#[test]
fn the_image_runs_as_the_manifests_user() {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile")).unwrap();
    let user = dockerfile.lines().rev().find_map(|line| line.strip_prefix("USER ")).expect("the Dockerfile sets USER");
    for overlay in OVERLAYS {
        for (owner, spec) in Rendered::of(overlay).pod_specs() {
            let run_as = spec["securityContext"]["runAsUser"].as_u64().unwrap();
            assert!(
                user.starts_with(&format!("{run_as}:")),
                "{overlay}/{owner}: runAsUser {run_as}, image USER {user}"
            );
        }
    }
}

/// What `config/default.toml` says, which the manifests must agree with.
struct Defaults {
    listen_ports: BTreeMap<&'static str, u16>,
    /// Where probes and metrics answer: `management_listen`, or the scheduler's one
    /// listener.
    management_ports: BTreeMap<&'static str, u16>,
    shutdown_grace_secs: BTreeMap<&'static str, u64>,
}

impl Defaults {
    fn read() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let section = |service: &str| config[service].as_table().unwrap().clone();
        let listen_ports = SERVICES
            .into_iter()
            .map(|service| (service, port_of(section(service)["listen"].as_str().unwrap())))
            .collect();
        let management_ports = SERVICES
            .into_iter()
            .map(|service| {
                let section = section(service);
                let listen = section.get("management_listen").unwrap_or(&section["listen"]).as_str().unwrap();
                (service, port_of(listen))
            })
            .collect();
        let shutdown_grace_secs = ["waitroom", "gateway"]
            .into_iter()
            .map(|service| (service, section(service)["shutdown_grace_secs"].as_integer().unwrap() as u64))
            .collect();
        Self { listen_ports, management_ports, shutdown_grace_secs }
    }
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {listen:?}"))
}

struct Rendered {
    objects: Vec<Value>,
}

impl Rendered {
    fn of(overlay: &str) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s/overlays").join(overlay);
        let output = Command::new("kubectl").arg("kustomize").arg(&dir).output().unwrap_or_else(|e| {
            panic!("running `kubectl kustomize` failed ({e}): install kubectl (it bundles kustomize) to check k8s/")
        });
        assert!(output.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).unwrap();
        let objects = serde_norway::Deserializer::from_str(&text).map(|doc| Value::deserialize(doc).unwrap()).collect();
        Self { objects }
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// Pod specs, by the name of the Deployment or Job that owns them.
    fn pod_specs(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.objects
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job")
            .map(|o| (o["metadata"]["name"].as_str().unwrap(), &o["spec"]["template"]["spec"]))
    }
}

struct Check<'a> {
    overlay: &'a str,
    rendered: &'a Rendered,
    defaults: &'a Defaults,
}

impl Check<'_> {
    fn deployment(&self, name: &str) -> &Value {
        self.rendered.find("Deployment", name).unwrap_or_else(|| panic!("{}: no Deployment {name}", self.overlay))
    }

    /// The configuration a container sees from its ConfigMaps (env overrides aside).
    fn config_env(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            if let Some(name) = source["configMapRef"]["name"].as_str() {
                let map = self.rendered.find("ConfigMap", name).unwrap();
                for (key, value) in map["data"].as_object().unwrap() {
                    env.insert(key.clone(), value.as_str().unwrap().to_owned());
                }
            }
        }
        env
    }

    fn deployments_run_their_service(&self) {
        for service in SERVICES {
            let overlay = self.overlay;
            let deployment = self.deployment(service);
            let pod = &deployment["spec"]["template"];
            let container = &pod["spec"]["containers"][0];
            assert_eq!(container["args"], serde_json::json!([service]), "{overlay}/{service}: subcommand");

            let port = self.defaults.listen_ports[service];
            let env = self.config_env(container);
            let listen = &env[&format!("BOXOFFICE__{}__LISTEN", service.to_uppercase())];
            assert_eq!(
                listen,
                &format!("0.0.0.0:{port}"),
                "{overlay}/{service}: listens on all interfaces, default port"
            );
            let named = |name: &str| container["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
            let management = self.defaults.management_ports[service];
            if management != port {
                let http = named("http").unwrap_or_else(|| panic!("{overlay}/{service}: no http port"));
                assert_eq!(http["containerPort"], port, "{overlay}/{service}: container port");
                let listen = &env[&format!("BOXOFFICE__{}__MANAGEMENT_LISTEN", service.to_uppercase())];
                assert_eq!(listen, &format!("0.0.0.0:{management}"), "{overlay}/{service}: management listener");
            }
            let probes = named("management").unwrap_or_else(|| panic!("{overlay}/{service}: no management port"));
            assert_eq!(probes["containerPort"], management, "{overlay}/{service}: management container port");
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &container[probe]["httpGet"];
                assert_eq!(get["path"], path, "{overlay}/{service}: {probe} path");
                assert!(
                    get["port"] == "management" || get["port"] == management,
                    "{overlay}/{service}: {probe} on the management port, not {}",
                    get["port"]
                );
            }
            let annotations = &pod["metadata"]["annotations"];
            assert_eq!(annotations["prometheus.io/scrape"], "true", "{overlay}/{service}: scraped");
            assert_eq!(
                annotations["prometheus.io/port"],
                management.to_string(),
                "{overlay}/{service}: metrics on the management port"
            );
            assert_eq!(annotations["prometheus.io/path"], "/metrics", "{overlay}/{service}: metrics path");
            if let Some(grace) = self.defaults.shutdown_grace_secs.get(service) {
                let termination = pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
                assert!(termination > *grace, "{overlay}/{service}: pods are killed before in-flight requests drain");
            }
            assert_eq!(env["BOXOFFICE__DATABASE__MIGRATE_ON_START"], "false", "{overlay}: the Job migrates, not pods");
            // The local overlay listens on 0.0.0.0 with the development secrets, which
            // the services refuse without the development switch; production never has it.
            let development = env.get("BOXOFFICE__DEVELOPMENT").map(String::as_str);
            let expected = if overlay == "local" { Some("true") } else { None };
            assert_eq!(development, expected, "{overlay}/{service}: the development switch");
        }
        for (owner, spec) in self.rendered.pod_specs() {
            let overlay = self.overlay;
            assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{overlay}/{owner}: non-root");
            for container in spec["containers"].as_array().unwrap() {
                let security = &container["securityContext"];
                assert_eq!(security["readOnlyRootFilesystem"], true, "{overlay}/{owner}: read-only root");
                assert_eq!(security["allowPrivilegeEscalation"], false, "{overlay}/{owner}: no privilege escalation");
                assert!(container["resources"]["requests"].is_object(), "{overlay}/{owner}: resource requests");
                assert!(container["resources"]["limits"].is_object(), "{overlay}/{owner}: resource limits");
            }
        }
    }

    fn migration_job_runs_migrate(&self) {
        let jobs: Vec<_> = self.rendered.of_kind("Job").collect();
        assert_eq!(jobs.len(), 1, "{}: one migration Job", self.overlay);
        let container = &jobs[0]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"], serde_json::json!(["migrate"]), "{}: the Job migrates", self.overlay);
        let env = container["env"].as_array().unwrap();
        assert!(
            env.iter().any(|e| e["name"] == "BOXOFFICE__DATABASE__URL"),
            "{}: the Job gets the database",
            self.overlay
        );
    }

    fn one_image_everywhere(&self) {
        let images: BTreeSet<&str> = self
            .rendered
            .pod_specs()
            .flat_map(|(_, spec)| spec["containers"].as_array().unwrap())
            .map(|c| c["image"].as_str().unwrap())
            .collect();
        assert_eq!(images.len(), 1, "{}: every workload runs the same image: {images:?}", self.overlay);
        let image = images.first().unwrap();
        assert!(
            image.contains(':') && *image != "boxoffice",
            "{}: the overlay pins an image tag: {image}",
            self.overlay
        );
    }

    /// Every ConfigMap and Secret a pod reads exists (rendered, or for production left to
    /// the operator as documented) and has the keys read from it.
    fn references_resolve(&self) {
        for (owner, spec) in self.rendered.pod_specs() {
            let mut reads: Vec<(&str, &str, Option<&str>)> = Vec::new();
            for container in spec["containers"].as_array().unwrap() {
                for source in container["envFrom"].as_array().into_iter().flatten() {
                    for kind in ["configMapRef", "secretRef"] {
                        if let Some(name) = source[kind]["name"].as_str() {
                            reads.push((kind_of(kind), name, None));
                        }
                    }
                }
                for var in container["env"].as_array().into_iter().flatten() {
                    for kind in ["secretKeyRef", "configMapKeyRef"] {
                        let reference = &var["valueFrom"][kind];
                        if let Some(name) = reference["name"].as_str() {
                            reads.push((kind_of(kind), name, reference["key"].as_str()));
                        }
                    }
                }
            }
            for volume in spec["volumes"].as_array().into_iter().flatten() {
                if let Some(name) = volume["secret"]["secretName"].as_str() {
                    reads.push(("Secret", name, None));
                    for item in volume["secret"]["items"].as_array().into_iter().flatten() {
                        reads.push(("Secret", name, item["key"].as_str()));
                    }
                }
            }
            for (kind, name, key) in reads {
                assert!(
                    self.provides(kind, name, key),
                    "{}/{owner}: reads {kind} {name} key {key:?}, which nothing provides",
                    self.overlay
                );
            }
        }
    }

    fn provides(&self, kind: &str, name: &str, key: Option<&str>) -> bool {
        if let Some(object) = self.rendered.find(kind, name) {
            return key.is_none_or(|key| object["data"].get(key).is_some() || object["stringData"].get(key).is_some());
        }
        self.overlay == "production"
            && kind == "Secret"
            && EXTERNAL_SECRETS.iter().any(|(secret, keys)| *secret == name && key.is_none_or(|k| keys.contains(&k)))
    }

    fn services_select_pods_and_ports(&self) {
        for service in self.rendered.of_kind("Service") {
            let name = service["metadata"]["name"].as_str().unwrap();
            let selector = service["spec"]["selector"].as_object().unwrap();
            let deployment = self
                .rendered
                .of_kind("Deployment")
                .find(|d| selects(selector, &d["spec"]["template"]["metadata"]["labels"]))
                .unwrap_or_else(|| panic!("{}: Service {name} selects no pods", self.overlay));
            let ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"].as_array().unwrap();
            for port in service["spec"]["ports"].as_array().unwrap() {
                let target = &port["targetPort"];
                assert!(
                    name == "scheduler" || *target != "management",
                    "{}: Service {name} exposes the management port (probes and metrics are not public)",
                    self.overlay
                );
                assert!(
                    ports.iter().any(|p| p["name"] == *target || p["containerPort"] == *target),
                    "{}: Service {name} targets port {target}, which its pods do not open",
                    self.overlay
                );
            }
        }
    }

    fn autoscalers_and_budgets_target_deployments(&self) {
        let autoscaled: BTreeSet<&str> = self
            .rendered
            .of_kind("HorizontalPodAutoscaler")
            .map(|hpa| {
                let target = &hpa["spec"]["scaleTargetRef"];
                assert_eq!(target["kind"], "Deployment");
                let name = target["name"].as_str().unwrap();
                self.deployment(name);
                name
            })
            .collect();
        assert_eq!(autoscaled, BTreeSet::from(["gateway", "waitroom"]), "{}: autoscaled services", self.overlay);
        for budget in self.rendered.of_kind("PodDisruptionBudget") {
            let selector = budget["spec"]["selector"]["matchLabels"].as_object().unwrap();
            let matched = self
                .rendered
                .of_kind("Deployment")
                .filter(|d| selects(selector, &d["spec"]["template"]["metadata"]["labels"]));
            assert_eq!(
                matched.count(),
                1,
                "{}: PodDisruptionBudget {} covers one Deployment",
                self.overlay,
                budget["metadata"]["name"]
            );
        }
    }

    /// The keys of one purpose (DECISIONS.md D6; `section`: `BOXOFFICE__<section>__*`)
    /// are mounted, signing key included, where the configuration says in the services
    /// that sign with them (`holders`), and nowhere else: the gateway shows ticket
    /// secrets and the scheduler mails them; the waiting room signs admission receipts.
    fn purpose_keys_reach_only(&self, section: &str, holders: &[&str]) {
        let overlay = self.overlay;
        let spec = |name: &str| self.deployment(name)["spec"]["template"]["spec"].clone();
        let env = self.config_env(&spec(holders[0])["containers"][0]);
        let (keys_dir, kid) =
            (&env[&format!("BOXOFFICE__{section}__KEYS_DIR")], &env[&format!("BOXOFFICE__{section}__SIGNING_KID")]);
        let secret_at = |spec: &Value, path: &str| {
            let mount = spec["containers"][0]["volumeMounts"].as_array()?.iter().find(|m| m["mountPath"] == path)?;
            let volume = spec["volumes"].as_array()?.iter().find(|v| v["name"] == mount["name"])?;
            volume["secret"]["secretName"].as_str().map(str::to_owned)
        };
        let private_key = format!("{kid}.private.pem");
        for service in holders {
            let secret = secret_at(&spec(service), keys_dir)
                .unwrap_or_else(|| panic!("{overlay}/{service}: no {section} keys mounted at {keys_dir}"));
            assert!(
                self.provides("Secret", &secret, Some(&private_key)),
                "{overlay}/{service}: {secret} has no {private_key}"
            );
            for other in SERVICES.iter().filter(|other| !holders.contains(other)) {
                let others_secrets: Vec<String> = spec(other)["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_owned))
                    .collect();
                assert!(!others_secrets.contains(&secret), "{overlay}: the {other} mounts {secret}");
            }
        }
    }

    /// The waiting room mounts the signing key named by the configuration; the gateway
    /// gets public keys only.
    fn signing_keys_reach_only_the_signer(&self) {
        let waitroom = &self.deployment("waitroom")["spec"]["template"]["spec"];
        let kid = &self.config_env(&waitroom["containers"][0])["BOXOFFICE__TOKENS__SIGNING_KID"];
        let keys_dir = &self.config_env(&waitroom["containers"][0])["BOXOFFICE__TOKENS__KEYS_DIR"];
        let mounted_secret = |spec: &Value| {
            let mount = spec["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["mountPath"] == keys_dir.as_str())
                .unwrap()
                .clone();
            spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap()["secret"].clone()
        };
        let signer = mounted_secret(waitroom);
        let private_key = format!("{kid}.private.pem");
        assert!(
            self.provides("Secret", signer["secretName"].as_str().unwrap(), Some(&private_key)),
            "{}: the waiting room mounts no {private_key}",
            self.overlay
        );
        let gateway = mounted_secret(&self.deployment("gateway")["spec"]["template"]["spec"]);
        let items: Vec<&str> = gateway["items"]
            .as_array()
            .expect("the gateway mounts chosen keys only")
            .iter()
            .map(|i| i["key"].as_str().unwrap())
            .collect();
        assert!(
            !items.is_empty() && items.iter().all(|k| k.ends_with(".public.pem")),
            "{}: gateway keys {items:?}",
            self.overlay
        );
        assert!(
            items.contains(&format!("{kid}.public.pem").as_str()),
            "{}: the gateway trusts the signing key",
            self.overlay
        );
    }
}

fn kind_of(reference: &str) -> &'static str {
    if reference.starts_with("secret") {
        "Secret"
    } else {
        "ConfigMap"
    }
}

fn selects(selector: &serde_json::Map<String, Value>, labels: &Value) -> bool {
    selector.iter().all(|(key, value)| labels[key] == *value)
}
