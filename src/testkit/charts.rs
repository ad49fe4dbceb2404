//! Fixture charts written at run time, with the source registry's address filled in.

use std::path::{Path, PathBuf};

use super::images::SeedSet;

fn write(dir: &Path, rel: &str, text: &str) -> anyhow::Result<()> {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(p, text)?;
    Ok(())
}

/// Write the demo chart `name` at `version` under `dir/name`. Its templates reference the
/// seeded images in every placement a mirror must find: list items written `- image:`,
/// containers with `name` first, an initContainer, a CronJob, a StatefulSet, a pre-install
/// hook Job, a custom resource with an `image` field, an image pinned by digest, and a
/// vendored subchart. A helm test Pod uses nginx too (test pods are mirrored), and
/// `.helmignore` drops `ignored.txt`.
pub fn write_demo_chart(
    dir: &Path,
    name: &str,
    version: &str,
    host: &str,
    set: &SeedSet,
) -> anyhow::Result<PathBuf> {
    let root = dir.join(name);
    write(
        &root,
        "Chart.yaml",
        &format!(
            "apiVersion: v2\nname: {name}\ndescription: lazyoci demo chart\nversion: {version}\nappVersion: \"1.0\"\ndependencies:\n  - name: sub\n    version: 1.0.0\n"
        ),
    )?;
    write(
        &root,
        "values.yaml",
        &format!(
            "registry: {host}\nimage:\n  repository: team/api\n  tag: \"1.0\"\nworker:\n  image: {host}/team/worker:1.0\npinnedDigest: \"{}\"\nsub:\n  enabled: true\n  image: {host}/team/sub:1.0\n",
            set.pinned.digest
        ),
    )?;
    write(&root, ".helmignore", "ignored.txt\n")?;
    write(&root, "ignored.txt", "this file must not be packaged\n")?;
    write(
        &root,
        "templates/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - image: "{{ .Values.registry }}/library/redis:7.2"
        name: wait-for-redis
      containers:
      - image: {{ .Values.registry }}/library/nginx:1.25
        name: web
      - name: api
        image: "{{ .Values.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}"
      - name: pinned
        image: "{{ .Values.registry }}/team/pinned@{{ .Values.pinnedDigest }}"
"#,
    )?;
    write(
        &root,
        "templates/statefulset.yaml",
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .Release.Name }}-worker
spec:
  serviceName: worker
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers:
        - {name: worker, image: "{{ .Values.worker.image }}"}
        - name: multi
          image: {{ .Values.registry }}/bitnami/multi:2.0
"#,
    )?;
    write(
        &root,
        "templates/cronjob.yaml",
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .Release.Name }}-job
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: job
            image: {{ .Values.registry }}/team/job:0.9
"#,
    )?;
    write(
        &root,
        "templates/hook.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: {{ .Values.registry }}/team/hook:1.0
"#,
    )?;
    write(
        &root,
        "templates/widget.yaml",
        r#"apiVersion: example.com/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}-widget
spec:
  replicas: 1
  image: {{ .Values.registry }}/team/operand:3.1
"#,
    )?;
    write(
        &root,
        "templates/tests/test-connection.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    "helm.sh/hook": test
spec:
  restartPolicy: Never
  containers:
  - name: test
    image: {{ .Values.registry }}/library/nginx:1.25
"#,
    )?;
    write(
        &root,
        "charts/sub/Chart.yaml",
        "apiVersion: v2\nname: sub\nversion: 1.0.0\n",
    )?;
    write(&root, "charts/sub/values.yaml", "image: busybox\n")?;
    write(
        &root,
        "charts/sub/templates/daemonset.yaml",
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-sub
spec:
  selector: {matchLabels: {app: sub}}
  template:
    metadata: {labels: {app: sub}}
    spec:
      containers:
      - name: sub
        image: {{ .Values.image }}
"#,
    )?;
    Ok(root)
}

/// The sorted, normalised images the demo chart must yield.
pub fn expected_images(host: &str, set: &SeedSet) -> Vec<String> {
    let mut v: Vec<String> = [
        &set.nginx,
        &set.redis,
        &set.multi,
        &set.api,
        &set.worker,
        &set.job,
        &set.hook,
        &set.operand,
        &set.sub,
    ]
    .iter()
    .map(|s| s.reference(host))
    .collect();
    v.push(format!("{host}/team/pinned@{}", set.pinned.digest));
    v.sort();
    v
}

/// A chart with one Deployment using `image`.
pub fn write_simple_chart(
    dir: &Path,
    name: &str,
    version: &str,
    image: &str,
) -> anyhow::Result<PathBuf> {
    let root = dir.join(name);
    write(
        &root,
        "Chart.yaml",
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )?;
    write(&root, "values.yaml", &format!("image: {image}\n"))?;
    write(
        &root,
        "templates/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - name: x\n        image: {{ .Values.image }}\n",
    )?;
    Ok(root)
}

/// A chart whose Deployment uses `images[0]` and whose Pod runs the rest, one container each.
pub fn write_chart_with_images(
    dir: &Path,
    name: &str,
    version: &str,
    images: &[String],
) -> anyhow::Result<PathBuf> {
    let first = images
        .first()
        .ok_or_else(|| anyhow::anyhow!("a chart needs at least one image"))?;
    let root = write_simple_chart(dir, name, version, first)?;
    if images.len() > 1 {
        let containers: String = images[1..]
            .iter()
            .enumerate()
            .map(|(i, img)| format!("  - name: c{i}\n    image: {img}\n"))
            .collect();
        write(
            &root,
            "templates/pod.yaml",
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{{{ .Release.Name }}}}-extra\nspec:\n  containers:\n{containers}"
            ),
        )?;
    }
    Ok(root)
}

/// A chart that cannot render with its defaults.
pub fn write_broken_chart(dir: &Path, name: &str, version: &str) -> anyhow::Result<PathBuf> {
    let root = dir.join(name);
    write(
        &root,
        "Chart.yaml",
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )?;
    write(&root, "values.yaml", "{}\n")?;
    write(
        &root,
        "templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  v: {{ required \"set .Values.needed to render this chart\" .Values.needed }}\n",
    )?;
    Ok(root)
}

/// A chart that exercises values overlays, every image from the standard set at `host`:
/// - `bitnami/multi`: a Bitnami-style map (`registry: ""`, `global.imageRegistry` set),
///   rendered the Bitnami way (the global wins);
/// - `team/sub`: a subchart aliased `cache`, its registry from the global;
/// - `team/worker`: a plain string image;
/// - `library/nginx`: a string image in a list of sidecars;
/// - `team/pinned`: a map pinned by digest;
/// - `team/api`: a map without a tag, which the template fills from `.Chart.AppVersion`;
/// - `team/job`: only in a ConfigMap, hard-coded (not relocatable by values);
/// - `team/hook`: hard-coded in a hook with `:{{ .Chart.AppVersion }}` (not relocatable).
pub fn write_overlay_chart(dir: &Path, host: &str, set: &SeedSet) -> anyhow::Result<PathBuf> {
    let root = dir.join("reloc");
    write(
        &root,
        "Chart.yaml",
        "apiVersion: v2\nname: reloc\nversion: 1.0.0\nappVersion: \"1.0\"\ndependencies:\n  - name: sub\n    version: 1.0.0\n    alias: cache\n",
    )?;
    write(
        &root,
        "values.yaml",
        &format!(
            "global:\n  imageRegistry: {host}\nimage:\n  registry: \"\"\n  repository: bitnami/multi\n  tag: \"2.0\"\nworker:\n  image: {host}/team/worker:1.0\nsidecars:\n  - name: proxy\n    image: {host}/library/nginx:1.25\npinned:\n  image:\n    registry: {host}\n    repository: team/pinned\n    digest: \"{}\"\napi:\n  image:\n    repository: {host}/team/api\ncache:\n  image:\n    tag: \"1.0\"\n",
            set.pinned.digest
        ),
    )?;
    write(
        &root,
        "templates/_helpers.tpl",
        r#"{{- define "reloc.image" -}}
{{- $registry := .image.registry -}}
{{- if .global.imageRegistry }}{{ $registry = .global.imageRegistry }}{{ end -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ .image.repository }}:{{ .image.tag }}
{{- end -}}
"#,
    )?;
    write(
        &root,
        "templates/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: {{ include "reloc.image" (dict "image" .Values.image "global" .Values.global) }}
      - name: worker
        image: {{ .Values.worker.image }}
      - name: api
        image: "{{ .Values.api.image.repository }}:{{ .Values.api.image.tag | default .Chart.AppVersion }}"
      - name: pinned
        image: "{{ .Values.pinned.image.registry }}/{{ .Values.pinned.image.repository }}@{{ .Values.pinned.image.digest }}"
      {{- range .Values.sidecars }}
      - name: {{ .name }}
        image: {{ .image }}
      {{- end }}
"#,
    )?;
    write(
        &root,
        "templates/configmap.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-jobs\ndata:\n  image: {host}/team/job:0.9\n"
        ),
    )?;
    write(
        &root,
        "templates/hook.yaml",
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{{{ .Release.Name }}}}-migrate\n  annotations:\n    \"helm.sh/hook\": pre-install\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: {host}/team/hook:{{{{ .Chart.AppVersion }}}}\n"
        ),
    )?;
    write(
        &root,
        "charts/sub/Chart.yaml",
        "apiVersion: v2\nname: sub\nversion: 1.0.0\n",
    )?;
    write(
        &root,
        "charts/sub/values.yaml",
        "image:\n  repository: team/sub\n  tag: \"0.1\"\n",
    )?;
    write(
        &root,
        "charts/sub/templates/daemonset.yaml",
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-cache
spec:
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers:
      - name: cache
        image: "{{ with .Values.global.imageRegistry }}{{ . }}/{{ end }}{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"#,
    )?;
    Ok(root)
}
