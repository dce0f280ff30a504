# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kata_harness_global_optspecs
    string join \n h/help V/version
end

function __fish_kata_harness_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kata_harness_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kata_harness_using_subcommand
    set -l cmd (__fish_kata_harness_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kata-harness -n "__fish_kata_harness_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -s V -l version -d 'Print version'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "run" -d 'Run the scenario suites and report which runtime ran every sandbox and container'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "list" -d 'List the trials the suites expand to (suite::scenario::variant), with skip reasons'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "diff" -d 'Show what a workload sees differently under Kata than under runc: the same pod under both, the same probes in both, each difference declared (with its reason) or not'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "merge" -d 'Join the result dirs of a run\'s shards (`run --shard K/N`) into the one report the whole run would have written'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "render" -d 'Print a file as a profile renders it: containerd\'s config.toml, kubeadm\'s config, Kata\'s configuration.toml, a CRI pod or container spec (crictl JSON)'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "doctor" -d 'Check what this machine can run, and why not'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "up" -d 'Start a node on this host to try things on by hand (every handler, Kata included), and leave it running'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "down" -d 'Stop a node started by `up` and remove everything of it'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "vm" -d 'Boot, enter and stop a test VM by hand (for debugging)'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "docs" -d 'Write the generated references (docs/reference/: CLI, man pages, completions, suite fields; bench/README.md; suites/schema.json), or check that they are current with --check'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "schema" -d 'Print the JSON Schema of a suite file (what suites/schema.json holds): editors complete and check rows with it'
complete -c kata-harness -n "__fish_kata_harness_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l profile -d 'The combination of component versions to run (a name in profiles/, or a profile file): containerd versions, VM images, Kata, Kubernetes, handlers. Default: the `default` profile. A flag given as well (--containerd, --image, --k8s-*, --kata-*, --target) overrides the profile\'s value, and the report says so' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l suites -d 'Directory of suite files (*.yaml), or one suite file [default: suites/ of this checkout]' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l target -d 'Where the suites run: all (the default profile\'s: the VM images, the local containerds and the local kubeadm cluster, in one report), vm (a throw-away QEMU VM per image), local (private containerds on this host), cri:///path/to/containerd.sock (an existing containerd, as it is configured: its handlers are discovered, its config is never rewritten, and what the rows create is removed), or ssh://user@host[:port] (the same for a containerd on that host, over SSH: --node-socket, --ssh-identity, --known-hosts). Default: the profile\'s' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l kubeconfig -d 'Run the cluster suites against an existing cluster through this kubeconfig, as it is (nothing started or torn down; the rows work in a namespace of the run\'s own, deleted at the end, on Ctrl-C too). runtimeType is read through the node\'s CRI where its socket is on this host (single-node clusters), else from the pods\' status' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l runtime-from -d 'With --kubeconfig: where the pods\' runtimes are read: cri (the node\'s CRI socket must be on this host) or pod-status (the API only: each pod\'s RuntimeClass handler, the handlers its node reports, its containers\' IDs; every row says runtimeType was not read) [default: cri where the socket is here, else pod-status]' -r -f -a "cri\t''
pod-status\t''"
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l node-socket -d 'With --target ssh://: the CRI socket on that host' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l ssh-identity -d 'With --target ssh://: the private key to log in with [default: ~/.ssh/id_ed25519, else ~/.ssh/id_rsa]' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l known-hosts -d 'With --target ssh://: the known_hosts file the host\'s key must be in (never trusted on first use) [default: ~/.ssh/known_hosts]' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l containerd -d 'With --target local: containerd release lines or binary directories [default: the profile\'s, 1.6,1.7,2.1,2.3]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l image -d 'With --target vm: image recipes under vm-images/, one VM and variant each [default: bookworm,bookworm-containerd21]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l filter -d 'Keep only trials whose name contains this text' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l shard -d 'Keep only the K-th of N shares of the trials (K from 1), for running one run on N machines: a share is whole testbeds (a containerd line\'s, a VM image\'s, the cluster\'s trials), balanced by --durations, else by counts of trials; the N shares hold every trial once. `kata-harness merge` joins their results' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l durations -d 'With --shard: the seconds each testbed took, to balance the shares by: a results.json of an earlier run (its trials\' seconds summed per variant) or a file of {"groups": {"<variant>": seconds}}. Every shard must be given the same file' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l k8s-bundle -d 'A Kubernetes bundle directory (bin/kubeadm, bin/kubelet, ...; any version); implies --k8s. Default: $KATA_HARNESS_K8S_BUNDLE, else the one scripts/build-k8s-bundle builds' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l k8s-release -d 'An upstream Kubernetes release (e.g. v1.20.2); implies --k8s. `run` downloads its binaries from dl.k8s.io ($KATA_HARNESS_K8S_URL replaces https://dl.k8s.io) into the cache once, each verified against the <binary>.sha256 published beside it. Upstream has no pause binary: the pause image is then busybox-based' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l kata-bundle -d 'Kata in the kata-static layout (a directory holding opt/kata, or a kata-static tarball, unpacked once into the cache). Default: $KATA_HARNESS_KATA_BUNDLE, else the source build of scripts/build-kata' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l kata-release -d 'An upstream Kata release (e.g. 3.30.0). `run` downloads its kata-static tarball(s) from GitHub releases ($KATA_HARNESS_GITHUB_URL replaces https://github.com, e.g. a mirror laid out as <base>/kata-containers/kata-containers/releases/download/<version>/<asset>) into the cache once, verified by the sha256 in kata-release.lock ($KATA_HARNESS_KATA_RELEASE_LOCK), which records them on the first download (upstream publishes no checksums); `list` uses the cache only. Assets: kata-static-<V>-x86_64.tar.xz (2.0 to 3.1), kata-static-<V>-amd64.tar.xz (3.2 to 3.20), kata-static-<V>-amd64.tar.zst (3.21 to 4.0); from 4.1 that and kata-go-static-<V>-amd64.tar.zst, unpacked into one layout' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l quarantine -d 'Known failures (row pattern, reason, tracker link, expiry date), reported as quarantined instead of failed until their date; an expired entry is an error. Default: quarantine.yaml in the --suites folder, if it has one; `none` reports every failure as failed' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l results -d 'Where JUnit, JSON and failure bundles go' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l retries -d 'Run a failed row again up to N times; one that then passes is reported flaky (never as a clean pass: with its failed attempts in every report, and the first one\'s bundle) and does not fail the run' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l allow-node-changes -d 'With --target cri://: also run the rows that change the node and undo it (they remove and re-import its sandbox image); without it they are skipped, naming what they touch'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l exact -d 'With --filter: keep only the trial with exactly this name'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l k8s -d 'Also run the cluster suites (suites with `placements: [cluster]`) against a kubeadm cluster on this host; `run` builds the offline bundle first if it is missing'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -l keep -d 'Keep run dirs (configs, logs) after they stop; with --target vm, leave a VM running when its rows fail and print how to reach it'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand run" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l profile -d 'The combination of component versions to run (a name in profiles/, or a profile file): containerd versions, VM images, Kata, Kubernetes, handlers. Default: the `default` profile. A flag given as well (--containerd, --image, --k8s-*, --kata-*, --target) overrides the profile\'s value, and the report says so' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l suites -d 'Directory of suite files (*.yaml), or one suite file [default: suites/ of this checkout]' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l target -d 'Where the suites run: all (the default profile\'s: the VM images, the local containerds and the local kubeadm cluster, in one report), vm (a throw-away QEMU VM per image), local (private containerds on this host), cri:///path/to/containerd.sock (an existing containerd, as it is configured: its handlers are discovered, its config is never rewritten, and what the rows create is removed), or ssh://user@host[:port] (the same for a containerd on that host, over SSH: --node-socket, --ssh-identity, --known-hosts). Default: the profile\'s' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l kubeconfig -d 'Run the cluster suites against an existing cluster through this kubeconfig, as it is (nothing started or torn down; the rows work in a namespace of the run\'s own, deleted at the end, on Ctrl-C too). runtimeType is read through the node\'s CRI where its socket is on this host (single-node clusters), else from the pods\' status' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l runtime-from -d 'With --kubeconfig: where the pods\' runtimes are read: cri (the node\'s CRI socket must be on this host) or pod-status (the API only: each pod\'s RuntimeClass handler, the handlers its node reports, its containers\' IDs; every row says runtimeType was not read) [default: cri where the socket is here, else pod-status]' -r -f -a "cri\t''
pod-status\t''"
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l node-socket -d 'With --target ssh://: the CRI socket on that host' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l ssh-identity -d 'With --target ssh://: the private key to log in with [default: ~/.ssh/id_ed25519, else ~/.ssh/id_rsa]' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l known-hosts -d 'With --target ssh://: the known_hosts file the host\'s key must be in (never trusted on first use) [default: ~/.ssh/known_hosts]' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l containerd -d 'With --target local: containerd release lines or binary directories [default: the profile\'s, 1.6,1.7,2.1,2.3]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l image -d 'With --target vm: image recipes under vm-images/, one VM and variant each [default: bookworm,bookworm-containerd21]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l filter -d 'Keep only trials whose name contains this text' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l shard -d 'Keep only the K-th of N shares of the trials (K from 1), for running one run on N machines: a share is whole testbeds (a containerd line\'s, a VM image\'s, the cluster\'s trials), balanced by --durations, else by counts of trials; the N shares hold every trial once. `kata-harness merge` joins their results' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l durations -d 'With --shard: the seconds each testbed took, to balance the shares by: a results.json of an earlier run (its trials\' seconds summed per variant) or a file of {"groups": {"<variant>": seconds}}. Every shard must be given the same file' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l k8s-bundle -d 'A Kubernetes bundle directory (bin/kubeadm, bin/kubelet, ...; any version); implies --k8s. Default: $KATA_HARNESS_K8S_BUNDLE, else the one scripts/build-k8s-bundle builds' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l k8s-release -d 'An upstream Kubernetes release (e.g. v1.20.2); implies --k8s. `run` downloads its binaries from dl.k8s.io ($KATA_HARNESS_K8S_URL replaces https://dl.k8s.io) into the cache once, each verified against the <binary>.sha256 published beside it. Upstream has no pause binary: the pause image is then busybox-based' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l kata-bundle -d 'Kata in the kata-static layout (a directory holding opt/kata, or a kata-static tarball, unpacked once into the cache). Default: $KATA_HARNESS_KATA_BUNDLE, else the source build of scripts/build-kata' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l kata-release -d 'An upstream Kata release (e.g. 3.30.0). `run` downloads its kata-static tarball(s) from GitHub releases ($KATA_HARNESS_GITHUB_URL replaces https://github.com, e.g. a mirror laid out as <base>/kata-containers/kata-containers/releases/download/<version>/<asset>) into the cache once, verified by the sha256 in kata-release.lock ($KATA_HARNESS_KATA_RELEASE_LOCK), which records them on the first download (upstream publishes no checksums); `list` uses the cache only. Assets: kata-static-<V>-x86_64.tar.xz (2.0 to 3.1), kata-static-<V>-amd64.tar.xz (3.2 to 3.20), kata-static-<V>-amd64.tar.zst (3.21 to 4.0); from 4.1 that and kata-go-static-<V>-amd64.tar.zst, unpacked into one layout' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l quarantine -d 'Known failures (row pattern, reason, tracker link, expiry date), reported as quarantined instead of failed until their date; an expired entry is an error. Default: quarantine.yaml in the --suites folder, if it has one; `none` reports every failure as failed' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l allow-node-changes -d 'With --target cri://: also run the rows that change the node and undo it (they remove and re-import its sandbox image); without it they are skipped, naming what they touch'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l exact -d 'With --filter: keep only the trial with exactly this name'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -l k8s -d 'Also run the cluster suites (suites with `placements: [cluster]`) against a kubeadm cluster on this host; `run` builds the offline bundle first if it is missing'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand list" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l handler -d 'The Kata handlers to compare with runc, one table each [default: kata, kata-qemu-runtime-rs; one the node does not have is skipped, naming why]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l target -d 'Where: local (a private containerd on this host), cri:///path/to/containerd.sock or ssh://user@host[:port] (an existing node, as it is configured) [default: local]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l containerd -d 'With --target local: the containerd line (or binary directory); the diff runs on the newest one given [default: the profile\'s newest]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l profile -d 'The profile (a name in profiles/, or a profile file), as for `run`' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l kata-bundle -d 'Kata in the kata-static layout (a directory or tarball), as for `run`' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l kata-release -d 'An upstream Kata release, as for `run`' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l results -d 'Where the suite it runs (diff-suite.yaml), JUnit, JSON, HTML and failure bundles go' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -l keep -d 'Keep the node\'s run dir (configs, logs) after it stops'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand diff" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand merge" -l out -d 'Where the merged junit.xml, results.json, results.html and bundles/ go' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand merge" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand render" -l profile -d 'The profile to render for (a name in profiles/, or a file) [default: default]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand render" -l containerd-version -d 'containerd version the config is for (picks the schema) [default: the profile\'s first]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand render" -l handler -d 'With pod-spec: the runtime handler the pod asks for [default: none, the default handler]' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand render" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand up" -l target -d 'Where the node runs: `local` (a private containerd on this host, in its own namespaces). For a VM: `kata-harness vm up`' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand up" -l containerd -d 'The containerd line the node runs' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand up" -l name -d 'The name `down` removes it by' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand up" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand down" -l name -d 'The name given to `up`' -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand down" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and not __fish_seen_subcommand_from up ssh down help" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and not __fish_seen_subcommand_from up ssh down help" -f -a "up" -d 'Boot a VM from an image recipe, provision it as `run` does, and leave it running'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and not __fish_seen_subcommand_from up ssh down help" -f -a "ssh" -d 'Open a shell (or run a command) in a VM started by `vm up` or kept by `run --keep`'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and not __fish_seen_subcommand_from up ssh down help" -f -a "down" -d 'Stop a VM and remove its overlay'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and not __fish_seen_subcommand_from up ssh down help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from up" -l image -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from up" -l name -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from ssh" -l name -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from ssh" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from down" -l name -r
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from help" -f -a "up" -d 'Boot a VM from an image recipe, provision it as `run` does, and leave it running'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from help" -f -a "ssh" -d 'Open a shell (or run a command) in a VM started by `vm up` or kept by `run --keep`'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from help" -f -a "down" -d 'Stop a VM and remove its overlay'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand vm; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand docs" -l root -d 'The checkout to read from and write into [default: this checkout]' -r -F
complete -c kata-harness -n "__fish_kata_harness_using_subcommand docs" -l check -d 'Compare the committed files with what would be generated, write nothing, and exit 1 naming each stale file'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand docs" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand schema" -s h -l help -d 'Print help'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "run" -d 'Run the scenario suites and report which runtime ran every sandbox and container'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "list" -d 'List the trials the suites expand to (suite::scenario::variant), with skip reasons'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "diff" -d 'Show what a workload sees differently under Kata than under runc: the same pod under both, the same probes in both, each difference declared (with its reason) or not'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "merge" -d 'Join the result dirs of a run\'s shards (`run --shard K/N`) into the one report the whole run would have written'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "render" -d 'Print a file as a profile renders it: containerd\'s config.toml, kubeadm\'s config, Kata\'s configuration.toml, a CRI pod or container spec (crictl JSON)'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "doctor" -d 'Check what this machine can run, and why not'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "up" -d 'Start a node on this host to try things on by hand (every handler, Kata included), and leave it running'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "down" -d 'Stop a node started by `up` and remove everything of it'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "vm" -d 'Boot, enter and stop a test VM by hand (for debugging)'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "docs" -d 'Write the generated references (docs/reference/: CLI, man pages, completions, suite fields; bench/README.md; suites/schema.json), or check that they are current with --check'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "schema" -d 'Print the JSON Schema of a suite file (what suites/schema.json holds): editors complete and check rows with it'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and not __fish_seen_subcommand_from run list diff merge render doctor up down vm docs schema help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and __fish_seen_subcommand_from vm" -f -a "up" -d 'Boot a VM from an image recipe, provision it as `run` does, and leave it running'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and __fish_seen_subcommand_from vm" -f -a "ssh" -d 'Open a shell (or run a command) in a VM started by `vm up` or kept by `run --keep`'
complete -c kata-harness -n "__fish_kata_harness_using_subcommand help; and __fish_seen_subcommand_from vm" -f -a "down" -d 'Stop a VM and remove its overlay'
