//! The cluster checks of Kata CI's workload scenarios, one function each: a liveness probe
//! restarting a container, a RuntimeClass's pod overhead copied into the pod, and a ConfigMap
//! update reaching a running container. Each reads the pod's runtime back as every row does.

use k8s_openapi::api::core::v1::ConfigMap;

use super::*;

/// The overhead a pod-overhead row's RuntimeClass declares (kata-deploy's for QEMU).
pub(super) fn pod_fixed() -> client::PodFixed {
    [("cpu", "250m"), ("memory", "160Mi")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// How long a container restarted by the kubelet may take to run again (a Kata container
/// starts in an existing guest; under TCG that is seconds).
const RESTART_DEADLINE: Duration = Duration::from_secs(120);

/// How long a ConfigMap update may take to reach a container: the kubelet's sync (up to a
/// minute and its cache TTL), then, for Kata, the copy into the guest.
const CONFIGMAP_DEADLINE: Duration = Duration::from_secs(150);

/// The restart count of the pod's first container.
fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

pub(super) async fn liveness_restart(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    // Healthy for 5 s, then the probe fails: the kubelet kills and restarts the container,
    // which is healthy again for 5 s, and so on.
    let command = "touch /tmp/healthy; sleep 5; rm -f /tmp/healthy; exec sleep 3600";
    let mut pod = pod_json(&name, action, command, "Always", false);
    pod["spec"]["containers"][0]["livenessProbe"] = json!({
        "exec": { "command": ["test", "-f", "/tmp/healthy"] },
        "initialDelaySeconds": 1,
        "periodSeconds": 1,
        "failureThreshold": 1,
    });
    create_row_pod(cluster, pod, evidence, touched).await?;
    let started = std::time::Instant::now();
    let pod = wait_pod(
        cluster,
        &name,
        "the kubelet to restart the container its liveness probe failed",
        RESTART_DEADLINE,
        |p| restarts(p) >= 1 && pod_phase(p) == "Running",
    )
    .await?;
    let waited = started.elapsed().as_secs();
    let handler = handler_of(cluster, action);
    let observed = runtime_of(cluster, row, handler.as_deref(), &[&pod], evidence).await?;
    Ok(format!(
        "{observed}; restarted by its liveness probe (restartCount {} after {waited} s)",
        restarts(&pod)
    ))
}

pub(super) async fn pod_overhead(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let created = create_row_pod(
        cluster,
        pod_json(&name, action, "exec sleep 3600", "Always", false),
        evidence,
        touched,
    )
    .await?;
    let want = pod_fixed();
    let got: client::PodFixed = created
        .spec
        .as_ref()
        .and_then(|s| s.overhead.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let seen = format!("spec.overhead {got:?}");
    if got != want {
        return Err(Failure::new(
            seen,
            format!("the API did not copy the RuntimeClass's overhead.podFixed {want:?} into the pod"),
        ));
    }
    let pod = wait_pod(cluster, &name, "the pod to be Running", POD_READY_DEADLINE, |p| {
        pod_phase(p) == "Running"
    })
    .await?;
    let handler = handler_of(cluster, action);
    let observed = runtime_of(cluster, row, handler.as_deref(), &[&pod], evidence).await?;
    Ok(format!("{seen}; {observed}"))
}

pub(super) async fn configmap_update(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let map = |value: &str| -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": name },
            "data": { "greeting": value },
        }))
        .expect("a ConfigMap literal deserialises")
    };
    touched.configmaps.push(name.clone());
    maps.create(&PostParams::default(), &map("first"))
        .await
        .map_err(|e| {
            Failure::new(
                "API error",
                format!("create ConfigMap {name}: {}", api_message(&e)),
            )
        })?;
    let mut pod = pod_json(&name, action, "exec sleep 3600", "Always", false);
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{ "name": "config", "mountPath": "/config" }]);
    pod["spec"]["volumes"] = json!([{ "name": "config", "configMap": { "name": name } }]);
    create_row_pod(cluster, pod, evidence, touched).await?;
    let pod = wait_pod(cluster, &name, "the pod to be Running", POD_READY_DEADLINE, |p| {
        pod_phase(p) == "Running"
    })
    .await?;
    let handler = handler_of(cluster, action);
    let observed = runtime_of(cluster, row, handler.as_deref(), &[&pod], evidence).await?;
    let read = || {
        cluster.kubectl(&[
            "exec",
            "-n",
            &cluster.namespace,
            &name,
            "--",
            "cat",
            "/config/greeting",
        ])
    };
    let first = read();
    if first.trim() != "first" {
        return Err(Failure::new(
            format!("{observed}; /config/greeting is {:?}", first.trim()),
            "the container does not see the ConfigMap's value",
        ));
    }
    maps.replace(&name, &PostParams::default(), &map("second"))
        .await
        .map_err(|e| {
            Failure::new(
                observed.clone(),
                format!("update ConfigMap {name}: {}", api_message(&e)),
            )
        })?;
    evidence.reproduce(format!(
        "{0} patch configmap {name} -p '{{\"data\":{{\"greeting\":\"second\"}}}}'; {0} exec {name} -- cat /config/greeting",
        cluster.kubectl_prefix()
    ));
    let updated = std::time::Instant::now();
    wait_for(
        "the updated ConfigMap to reach the container",
        CONFIGMAP_DEADLINE,
        std::time::Duration::from_secs(2),
        || {
            let now = read();
            async move {
                match now.trim() {
                    "second" => Attempt::Ready(()),
                    other => Attempt::NotYet(format!("/config/greeting is {other:?}")),
                }
            }
        },
    )
    .await
    .map_err(|e| Failure::new(format!("{observed}; update not seen"), e.to_string()))?;
    Ok(format!(
        "{observed}; ConfigMap update seen in the container after {} s",
        updated.elapsed().as_secs()
    ))
}
