//! The checks of `kube:` rows, one function each: kubeadm's system pods, a DaemonSet (and
//! what its pod sees of the node's network), a web pod answering another pod, a pod the API
//! server refuses, and a pod that stays Pending.

use super::*;

pub(super) async fn system_pods(
    cluster: &Cluster,
    row: &Row,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "kube-system");
    evidence.reproduce(format!(
        "{} get pods -n kube-system -o wide",
        cluster.kubectl_prefix()
    ));
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| Failure::new("API error", format!("list kube-system pods: {}", api_message(&e))))?;
    let unready: Vec<String> = list
        .items
        .iter()
        .filter(|p| !pod_ready(p))
        .map(|p| {
            format!(
                "{} ({})",
                p.metadata.name.clone().unwrap_or_default(),
                pod_phase(p)
            )
        })
        .collect();
    if list.items.is_empty() || !unready.is_empty() {
        return Err(Failure::new(
            format!("{} pods, not Ready: {unready:?}", list.items.len()),
            "every kube-system pod must be Running and Ready",
        ));
    }
    let host_network = list
        .items
        .iter()
        .filter(|pod| pod.spec.as_ref().and_then(|s| s.host_network) == Some(true))
        .count();
    let pods: Vec<&Pod> = list.items.iter().collect();
    let observed = runtime_of(cluster, row, None, &pods, evidence).await?;
    Ok(format!(
        "{} pods Ready ({host_network} host-network); {observed}",
        list.items.len()
    ))
}

pub(super) async fn web_pod(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let serve = format!(
        "mkdir -p /www && echo \"{WEB_BODY} $(hostname)\" > /www/index.html && exec httpd -f -p {WEB_PORT} -h /www"
    );
    create_row_pod(
        cluster,
        pod_json(&name, action, &serve, "Always", true),
        evidence,
        touched,
    )
    .await?;
    let pod = wait_pod(
        cluster,
        &name,
        "the web pod to be Ready",
        POD_READY_DEADLINE,
        pod_ready,
    )
    .await?;
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or_else(|| Failure::new("no pod IP", "the Ready web pod has no IP"))?;
    let handler = handler_of(cluster, action);
    let observed = runtime_of(cluster, row, handler.as_deref(), &[&pod], evidence).await?;

    // HTTP from another pod (default runtime, pod network). Debian's static busybox `wget`
    // segfaults, so the request is written by hand through busybox `nc`.
    let client_name = unique("client");
    touched.pods.push(client_name.clone());
    let fetch = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {ip} {WEB_PORT}");
    let plain = KubeAction {
        check: KubeCheck::WebPod,
        runtime_class: None,
        handler: None,
        host_network: false,
        sees_node_address: None,
    };
    create_pod(
        cluster,
        pod_json(&client_name, &plain, &fetch, "Never", false),
        evidence,
    )
    .await
    .map_err(|e| {
        Failure::new(
            "API error",
            format!("create pod {client_name}: {}", api_message(&e)),
        )
    })?;
    let done = wait_pod(
        cluster,
        &client_name,
        "the client pod to finish",
        CLIENT_DEADLINE,
        |p| matches!(pod_phase(p).as_str(), "Succeeded" | "Failed"),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let body = pods
        .logs(&client_name, &LogParams::default())
        .await
        .unwrap_or_else(|e| format!("(no logs: {})", api_message(&e)));
    evidence.file("http-response.txt", &body);
    evidence.reproduce(format!(
        "{} run client --rm -i --image {WORKLOAD_IMAGE} --image-pull-policy Never --restart Never -- sh -c {fetch:?}",
        cluster.kubectl_prefix()
    ));
    if pod_phase(&done) != "Succeeded" || !body.contains(WEB_BODY) || !body.contains(" 200 OK") {
        return Err(Failure::new(
            format!(
                "{observed}; HTTP from another pod: {} {:?}",
                pod_phase(&done),
                body.trim()
            ),
            format!("the client pod could not fetch http://{ip}:{WEB_PORT}/"),
        ));
    }
    let page = body.lines().last().unwrap_or_default().trim().to_owned();
    Ok(format!("{observed}; HTTP 200 from another pod ({page:?})"))
}

pub(super) async fn daemonset(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let mut template = pod_json(&name, action, "exec sleep 3600", "Always", false);
    template["metadata"] = json!({ "labels": { "app": name } });
    template["spec"]["tolerations"] = json!([{ "operator": "Exists" }]);
    let ds = json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": name },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": template["metadata"].clone(), "spec": template["spec"].clone() },
        },
    });
    evidence.file(
        &format!("{name}.json"),
        &serde_json::to_string_pretty(&ds).unwrap_or_default(),
    );
    evidence.reproduce(format!("{} apply -f {name}.json", cluster.kubectl_prefix()));
    let ds: DaemonSet = serde_json::from_value(ds).expect("DaemonSet literal deserialises");
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    touched.daemonsets.push(name.clone());
    api.create(&PostParams::default(), &ds).await.map_err(|e| {
        Failure::new(
            "API error",
            format!("create DaemonSet {name}: {}", api_message(&e)),
        )
    })?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let selector = format!("app={name}");
    let pod = wait_for(
        "the DaemonSet's pod to be Ready",
        POD_READY_DEADLINE,
        Duration::from_millis(300),
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            let gone = cluster.gone();
            async move {
                if let Some(why) = gone {
                    return Attempt::Fatal(why);
                }
                match pods.list(&ListParams::default().labels(&selector)).await {
                    Ok(list) => match list.items.into_iter().next() {
                        Some(pod) if pod_ready(&pod) => Attempt::Ready(pod),
                        Some(pod) => Attempt::NotYet(format!("phase {}", pod_phase(&pod))),
                        None => Attempt::NotYet("no pod yet".into()),
                    },
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        },
    )
    .await
    .map_err(|e| Failure::new("no Ready pod", e.to_string()))?;
    if let Some(pod_name) = &pod.metadata.name {
        touched.pods.push(pod_name.clone());
    }
    let handler = handler_of(cluster, action);
    let observed = runtime_of(cluster, row, handler.as_deref(), &[&pod], evidence).await?;
    let network = if action.host_network { "host-network " } else { "" };
    let observed = format!("{network}DaemonSet pod Ready; {observed}");
    match action.sees_node_address {
        Some(want) => judge_node_address(cluster, &pod, want, observed, evidence).await,
        None => Ok(observed),
    }
}

/// `ip -o -4 addr` in the pod's first container (CRI ExecSync, or `kubectl exec` where the
/// node's CRI is not read): does it show the node's IP?
pub(super) async fn judge_node_address(
    cluster: &Cluster,
    pod: &Pod,
    want: bool,
    observed: String,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let Some((container, Some(id))) = container_ids(pod).into_iter().next() else {
        return Err(Failure::new(observed, "no container to look into"));
    };
    let argv = ["ip", "-o", "-4", "addr"];
    let (node_ip, exit_code, addresses, stderr) = match cluster.cri() {
        Some(cri) => {
            evidence
                .reproduce("crictl exec -s \"$(crictl ps --pod \"$POD\" --latest -q)\" ip -o -4 addr".into());
            let exec = cri
                .exec_sync(&id, &argv, 60)
                .await
                .map_err(|e| Failure::new(observed.clone(), format!("ExecSync ip addr failed: {e}")))?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (
                cluster.node_ip.clone(),
                exec.exit_code,
                text(&exec.stdout),
                text(&exec.stderr),
            )
        }
        None => {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut args = vec!["exec", "-n", &cluster.namespace, &name, "-c", &container, "--"];
            args.extend(argv);
            evidence.reproduce(format!("{} {}", cluster.kubectl_prefix(), args.join(" ")));
            let out = cluster
                .kubectl_output(&args)
                .map_err(|e| Failure::new(observed.clone(), e))?;
            // The pod's own node, as the API reports it (a cluster read without its CRI may
            // have several).
            let host_ip = pod.status.as_ref().and_then(|s| s.host_ip.clone());
            (
                host_ip.unwrap_or_else(|| cluster.node_ip.clone()),
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    evidence.file("container-ip-addr.txt", &addresses);
    let sees = addresses.contains(&format!("inet {node_ip}/"));
    let observed = format!(
        "{observed}, node address {node_ip} {} inside",
        if sees { "visible" } else { "not visible" }
    );
    if exit_code != 0 {
        return Err(Failure::new(
            observed,
            format!("ip addr in the container exited {exit_code}: {stderr}"),
        ));
    }
    if sees == want {
        Ok(observed)
    } else if want {
        Err(Failure::new(
            observed,
            format!("the container does not share the node's network:\n{addresses}"),
        ))
    } else {
        Err(Failure::new(
            observed,
            format!(
                "the container sees the node's address {}:\n{addresses}",
                cluster.node_ip
            ),
        ))
    }
}

pub(super) async fn pod_rejected(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let want = row.expect.rejected.clone().unwrap_or_default();
    match create_pod(
        cluster,
        pod_json(&name, action, "exec sleep 3600", "Always", false),
        evidence,
    )
    .await
    {
        Ok(_) => {
            touched.pods.push(name.clone());
            Err(Failure::new(
                format!("pod {name} was accepted"),
                format!("expected the API to reject it with {want:?}"),
            ))
        }
        Err(e) => {
            let message = api_message(&e);
            evidence.file("api-error.txt", &message);
            if message.contains(&want) {
                Ok(format!("rejected: {message}"))
            } else {
                Err(Failure::new(
                    format!("rejected: {message}"),
                    format!("expected {want:?} in the error"),
                ))
            }
        }
    }
}

pub(super) async fn pod_pending(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let reason = row.expect.event.clone().unwrap_or_default();
    touched.pods.push(name.clone());
    create_pod(
        cluster,
        pod_json(&name, action, "exec sleep 3600", "Always", false),
        evidence,
    )
    .await
    .map_err(|e| Failure::new("API error", format!("create pod {name}: {}", api_message(&e))))?;
    evidence.reproduce(format!(
        "{} get events --field-selector involvedObject.name={name}",
        cluster.kubectl_prefix()
    ));
    let client = cluster.client.clone();
    let event = wait_for(
        &format!("a {reason} event for pod {name}"),
        EVENT_DEADLINE,
        Duration::from_millis(500),
        || {
            let client = client.clone();
            let name = name.clone();
            let reason = reason.clone();
            let gone = cluster.gone();
            let namespace = cluster.namespace.clone();
            async move {
                if let Some(why) = gone {
                    return Attempt::Fatal(why);
                }
                match client::events_for(&client, &namespace, &name).await {
                    Ok(events) => match events
                        .iter()
                        .find(|e| e.reason.as_deref() == Some(reason.as_str()))
                    {
                        Some(event) => Attempt::Ready(event.clone()),
                        None => Attempt::NotYet(format!(
                            "events so far: {:?}",
                            events.iter().filter_map(|e| e.reason.clone()).collect::<Vec<_>>()
                        )),
                    },
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        },
    )
    .await
    .map_err(|e| Failure::new(format!("no {reason} event"), e.to_string()))?;
    let message = event.message.clone().unwrap_or_default();
    evidence.file("event.txt", &message);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pod = pods
        .get(&name)
        .await
        .map_err(|e| Failure::new("API error", format!("get pod {name}: {}", api_message(&e))))?;
    let phase = pod_phase(&pod);
    // CRI: ListPodSandbox must not show a ready sandbox for the pod (where the CRI is read;
    // else the pod status's own: no container started).
    let (ready, witness) = match cluster.cri() {
        Some(cri) => (
            cri.list_pod_sandboxes()
                .await
                .map_err(|e| Failure::new("ListPodSandbox failed", e.to_string()))?
                .into_iter()
                .filter(|s| s.metadata.as_ref().is_some_and(|m| m.name == name))
                .filter(|s| s.state == k8s_cri::v1::PodSandboxState::SandboxReady as i32)
                .count(),
            "ready sandboxes (CRI)",
        ),
        None => (
            container_ids(&pod).iter().filter(|(_, id)| id.is_some()).count(),
            "started containers (pod status)",
        ),
    };
    let observed = format!("{phase}; event {reason}: {message}; {ready} {witness}");
    if phase != "Pending" || ready != 0 {
        return Err(Failure::new(
            observed,
            "expected the pod to stay Pending with no ready sandbox",
        ));
    }
    Ok(observed)
}
