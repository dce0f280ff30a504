//! The node namespace from outside: the script that prepares it (copy-on-write overlays
//! over the system dirs, private files over the global sysctls kubelet writes, the cgroup v2
//! mount hidden on hybrid hosts), and commands run in it or on the host.

use super::*;

/// The six global sysctls kubelet's setupKernelTunables writes: shadowed by private files.
pub(super) const SHADOWED_SYSCTLS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// Host dirs kubeadm, kubelet and containerd write to: each gets a copy-on-write overlay.
pub(super) const OVERLAID: [&str; 6] = ["etc", "var", "usr", "run", "opt", "root"];

/// `nsenter` into the node namespace (mount, net, uts) of `holder`.
pub(super) fn in_node(holder: u32, argv: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg("-t")
        .arg(holder.to_string())
        .args(["-m", "-n", "-u", "--"])
        .args(argv);
    command
}

/// Runs a short host command; failure names the step.
pub(super) fn host(step: &str, argv: &[&str]) -> Result<(), KubeError> {
    let mut command = Command::new(argv[0]);
    command.args(&argv[1..]);
    process::run(command, SHORT_COMMAND)
        .map(|_| ())
        .map_err(|source| KubeError::Step {
            step: step.to_owned(),
            source,
        })
}

/// The shell script that prepares the node namespace (runs inside it, once).
/// `kata_layouts`: Kata layouts' `opt/kata`, mounted read-only at /opt/kata (in the /opt
/// overlay), where their configurations and QEMU look for their files: one bound, two (the Go
/// runtime's and runtime-rs's, built apart) merged by a read-only overlay, the first over the
/// second.
pub fn ns_setup_script(
    run_dir: &Path,
    node_ip: &str,
    hide_unified: bool,
    kata_layouts: &[PathBuf],
) -> String {
    let t = run_dir.display();
    let mut s = String::from("#!/bin/sh\n# Runs INSIDE the node namespace (mount+net+uts), once.\nset -eu\n");
    s += &format!("hostname {NODE_NAME}\n");
    if hide_unified {
        s += "# hybrid cgroups with controllers on the v2 mount: runc/crun need it hidden\numount -l /sys/fs/cgroup/unified\n";
    }
    s += &format!(
        "for d in {}; do\n  mkdir -p {t}/ovl/$d/upper {t}/ovl/$d/work\n  mount -t overlay overlay -o lowerdir=/$d,upperdir={t}/ovl/$d/upper,workdir={t}/ovl/$d/work /$d\ndone\n",
        OVERLAID.join(" ")
    );
    match kata_layouts {
        [] => {}
        [layout] => {
            s += &format!(
                "mkdir -p /opt/kata\nmount --bind {} /opt/kata\nmount -o remount,bind,ro /opt/kata\n",
                layout.display()
            )
        }
        layouts => {
            let lower: Vec<String> = layouts.iter().map(|l| l.display().to_string()).collect();
            s += &format!(
                "mkdir -p /opt/kata\nmount -t overlay -o ro,lowerdir={} overlay /opt/kata\n",
                lower.join(":")
            );
        }
    }
    s += &format!(
        "mkdir -p {t}/sysctl\nfor f in {}; do\n  n={t}/sysctl/$(echo $f | tr / _); cat /proc/sys/$f > $n; mount --bind $n /proc/sys/$f\ndone\n",
        SHADOWED_SYSCTLS.join(" ")
    );
    s += &format!("echo \"{node_ip} {NODE_NAME}\" >> /etc/hosts\nip link set lo up\n");
    // A node forwards (kubeadm's preflight requires it, as pods and services need it); the
    // sysctl is per network namespace, so the host's stays as it is.
    s += "echo 1 > /proc/sys/net/ipv4/ip_forward\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_setup_overlays_every_written_dir_and_shadows_sysctls() {
        let s = ns_setup_script(Path::new("/tmp/kh-x"), "172.31.250.2", true, &[]);
        assert!(s.contains("lowerdir=/$d,upperdir=/tmp/kh-x/ovl/$d/upper"));
        assert!(s.contains("for d in etc var usr run opt root;"));
        assert!(s.contains("kernel/panic_on_oops"));
        assert!(s.contains("umount -l /sys/fs/cgroup/unified"));
        assert!(s.contains("echo 1 > /proc/sys/net/ipv4/ip_forward"));
        assert!(!ns_setup_script(Path::new("/tmp/kh-x"), "172.31.250.2", false, &[]).contains("umount"));
        assert!(!s.contains("/opt/kata"));
        let kata = ns_setup_script(
            Path::new("/tmp/kh-x"),
            "172.31.250.2",
            false,
            &["/c/kata/opt/kata".into()],
        );
        let overlay = kata.find("for d in etc var usr run opt root;").unwrap();
        let bind = kata
            .find("mount --bind /c/kata/opt/kata /opt/kata\nmount -o remount,bind,ro /opt/kata")
            .unwrap();
        assert!(
            overlay < bind,
            "the layout is mounted in the /opt overlay: {kata}"
        );
        let both = ns_setup_script(
            Path::new("/tmp/kh-x"),
            "172.31.250.2",
            false,
            &["/c/kata/opt/kata".into(), "/c/kata-rs/opt/kata".into()],
        );
        assert!(
            both.contains(
                "mount -t overlay -o ro,lowerdir=/c/kata/opt/kata:/c/kata-rs/opt/kata overlay /opt/kata\n"
            ),
            "{both}"
        );
    }
}
