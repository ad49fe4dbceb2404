#!/usr/bin/env python3
"""Check the image-discovery corpus with the real helm and print the baseline table.

Usage: python3 tests/corpus/check.py [--helm PATH] [--markdown] [CASE ...]

For every case (a directory with expected.yaml) it:
  1. checks expected.yaml: known keys, every image a valid, already-normalised reference,
     no duplicates, no overlap between images and notImages;
  2. copies the chart to a scratch directory; if Chart.yaml names REPO_URL or OCI_URL, packages
     tests/corpus/_deps/*, serves them as a Helm repository on 127.0.0.1 and substitutes the
     placeholders with that URL, then runs `helm dependency build` (helm resolves ranges and
     honours Chart.lock itself);
  3. runs `helm lint` (with the case's values) and checks that every image the chart's and its
     subcharts' annotations and Images.lock name is in images or notImages;
  4. renders `helm template x CHART --skip-tests --kube-version K [--api-versions A] [-f values]`
     and greps `image:` lines (quoted keys too) - the "rendered only" baseline. Every image so
     found must be in the ground truth;
  5. renders again, this time without --skip-tests, once with each of
     tests/corpus/_verify/<case>.yaml and <case>.<variant>.yaml if there are any (values that
     switch optional parts on; variants for options that exclude each other), and checks that every rendered image is ground truth.
     Ground-truth images that no render produces are listed: they are the ones only
     annotations, Images.lock, values or runtime knowledge can supply.

Needs python3 with PyYAML and helm (v3.14+ or v4). Exit status 1 if any check fails.
"""
import argparse
import functools
import glob
import hashlib
import json
import http.server
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEPS = os.path.join(HERE, "_deps")
VERIFY = os.path.join(HERE, "_verify")
KEYS = {"case", "values", "kubeVersion", "apiVersions", "images", "notImages"}

COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REF = re.compile(
    r"^(?P<reg>(?:[a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+(?::[0-9]+)?|localhost(?::[0-9]+)?|[a-zA-Z0-9-]+:[0-9]+)"
    rf"/(?P<repo>{COMPONENT}(?:/{COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
# The baseline grep: an `image:` key (optionally quoted, as in JSON-style flow maps) and the
# scalar after it, on any line of helm's output.
GREP = re.compile(r"""(?:^|[\s{,])["']?image["']?\s*:\s*["']?([^\s"',}\]#]+)""")


def normalise(s):
    """docker-style normalisation: nginx -> docker.io/library/nginx:latest."""
    s = s.strip()
    name, _, digest = s.partition("@")
    tag = None
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        reg, repo = first, rest
    else:
        reg, repo = "docker.io", name
    if reg in ("index.docker.io", "registry-1.docker.io"):
        reg = "docker.io"
    if reg == "docker.io" and "/" not in repo:
        repo = "library/" + repo
    if not tag and not digest:
        tag = "latest"
    out = f"{reg}/{repo}"
    if tag:
        out += ":" + tag
    if digest:
        out += "@" + digest
    return out


def valid_ref(s):
    return bool(REF.match(s)) and normalise(s) == s


def grep_images(text):
    found = set()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in GREP.finditer(line):
            found.add(normalise(m.group(1)))
    return found


def walk_images(text):
    """Structural cross-check: every string under an `image` key in the parsed documents."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "image" and isinstance(v, str):
                    found.add(normalise(v))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for doc in yaml.safe_load_all(text):
        walk(doc)
    return found


def lock_digest(chart_deps, lock_deps):
    """Chart.lock's digest as helm computes it (resolver.HashReq): sha256 over the Go JSON
    encoding of [Chart.yaml dependencies, Chart.lock dependencies]."""
    fields = [("name", False), ("version", True), ("repository", False), ("condition", True),
              ("tags", True), ("enabled", True), ("import-values", True), ("alias", True)]

    def enc(d):
        return {k: d.get(k, "") for k, omit in fields if not (omit and not d.get(k))}

    data = json.dumps([[enc(d) for d in chart_deps], [enc(d) for d in lock_deps]],
                      separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def fix_lock_digest(chart):
    """After the placeholders are substituted the committed digest no longer matches and
    `helm dependency build` refuses ("out of sync"); recompute it like helm does."""
    lock_path = os.path.join(chart, "Chart.lock")
    if not os.path.exists(lock_path):
        return
    deps = yaml.safe_load(open(os.path.join(chart, "Chart.yaml"))).get("dependencies") or []
    text = open(lock_path).read()
    lock = yaml.safe_load(text)
    new = lock_digest(deps, lock.get("dependencies") or [])
    open(lock_path, "w").write(text.replace(lock["digest"], new))


def declared_images(chart):
    """(where, ref) for every image named by the chart's and its subcharts' annotations
    (artifacthub.io/images, helm.sh/images, images) and Images.lock files."""
    out = []

    def from_chart_yaml(where, text):
        ann = (yaml.safe_load(text) or {}).get("annotations") or {}
        for key in ("artifacthub.io/images", "helm.sh/images", "images"):
            for item in yaml.safe_load(ann.get(key) or "[]") or []:
                out.append((f"{where} {key}", item["image"]))

    for root, _, files in os.walk(chart):
        rel = os.path.relpath(root, chart)
        if "Chart.yaml" in files:
            from_chart_yaml(f"{rel}/Chart.yaml", open(os.path.join(root, "Chart.yaml")).read())
        if "Images.lock" in files:
            for item in yaml.safe_load(open(os.path.join(root, "Images.lock")))["images"]:
                out.append((f"{rel}/Images.lock", item["image"]))
        for f in files:
            if f.endswith(".tgz"):
                with tarfile.open(os.path.join(root, f)) as tar:
                    for m in tar.getmembers():
                        if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"):
                            from_chart_yaml(f"{rel}/{f}:{m.name}", tar.extractfile(m).read().decode())
    return out


class Repo:
    """The _deps charts, packaged and served as a Helm repository on loopback."""

    def __init__(self, helm):
        self.dir = tempfile.mkdtemp(prefix="corpus-repo-")
        for d in sorted(os.listdir(DEPS)):
            run([helm, "package", os.path.join(DEPS, d), "-d", self.dir])
        run([helm, "repo", "index", self.dir])
        handler = functools.partial(QuietHandler, directory=self.dir)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self):
        self.httpd.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def run(cmd, env=None, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr.strip()}")
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", default=os.environ.get("HELM", "helm"))
    ap.add_argument("--markdown", action="store_true", help="print the README table")
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    helm = args.helm

    home = tempfile.mkdtemp(prefix="corpus-helm-home-")
    env = dict(os.environ, HELM_CACHE_HOME=f"{home}/cache", HELM_CONFIG_HOME=f"{home}/config",
               HELM_DATA_HOME=f"{home}/data")
    cases = args.cases or sorted(
        d for d in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, d, "expected.yaml")))
    repo = None
    failures = []
    rows = []
    try:
        for case in cases:
            errs = []
            notes = []
            exp = yaml.safe_load(open(os.path.join(HERE, case, "expected.yaml")))
            extra = set(exp) - KEYS
            if extra:
                errs.append(f"unknown keys {sorted(extra)}")
            for k in ("case", "images"):
                if k not in exp:
                    errs.append(f"missing {k}")
            gt = exp.get("images") or []
            nots = exp.get("notImages") or []
            for ref in gt:
                if not valid_ref(ref):
                    errs.append(f"not a normalised image reference: {ref}")
            if len(set(gt)) != len(gt):
                errs.append("duplicate images")
            gt = set(gt)
            for n in nots:
                if n in gt or (valid_ref(normalise(n)) and normalise(n) in gt):
                    errs.append(f"notImage is also ground truth: {n}")

            scratch = tempfile.mkdtemp(prefix=f"corpus-{case}-")
            chart = os.path.join(scratch, "chart")
            shutil.copytree(os.path.join(HERE, case, "chart"), chart)
            values_file = os.path.join(scratch, "values.yaml")
            with open(values_file, "w") as f:
                yaml.safe_dump(exp.get("values") or {}, f)
            common = ["--kube-version", str(exp.get("kubeVersion", "1.34.0"))]
            for a in exp.get("apiVersions") or []:
                common += ["--api-versions", a]
            try:
                cy_path = os.path.join(chart, "Chart.yaml")
                cy = open(cy_path).read()
                if "REPO_URL" in cy or "OCI_URL" in cy:
                    if not repo:
                        repo = Repo(helm)
                        # `helm dependency build` only downloads from repositories it knows
                        run([helm, "repo", "add", "corpus", repo.url], env=env)
                    for name in ("Chart.yaml", "Chart.lock"):
                        p = os.path.join(chart, name)
                        if os.path.exists(p):
                            t = open(p).read().replace("REPO_URL", repo.url).replace("OCI_URL", repo.url)
                            open(p, "w").write(t)
                    fix_lock_digest(chart)
                    run([helm, "dependency", "build", chart], env=env)
                # helm lint has no --api-versions
                lint = run([helm, "lint", chart, "-f", values_file, *common[:2]], env=env, check=False)
                if lint.returncode != 0:
                    errs.append("helm lint failed:\n" + lint.stdout + lint.stderr)
                out = run([helm, "template", "x", chart, "--skip-tests", "-f", values_file, *common],
                          env=env).stdout
                for where, ref in declared_images(chart):
                    if ref not in gt and ref not in nots:
                        errs.append(f"{where} declares {ref}, in neither images nor notImages")
                if exp.get("values"):
                    bare = run([helm, "template", "x", chart, "--skip-tests", *common], env=env,
                               check=False)
                    notes.append("renders without its values" if bare.returncode == 0 else
                                 "does not render without its values: "
                                 + bare.stderr.strip().splitlines()[0])
                grep = grep_images(out)
                walked = walk_images(out)
                if grep != walked:
                    errs.append(f"grep and YAML walk disagree: {sorted(grep ^ walked)}")
                for i in sorted(grep - gt):
                    errs.append(f"default render has an image missing from the ground truth: {i}")
                verify = sorted(glob.glob(os.path.join(VERIFY, f"{case}.yaml"))
                                + glob.glob(os.path.join(VERIFY, f"{case}.*.yaml"))) or [None]
                allon = set()
                for v in verify:
                    vfiles = ["-f", v] if v else []
                    vout = run([helm, "template", "x", chart, "-f", values_file, *vfiles, *common],
                               env=env).stdout
                    found = walk_images(vout) | grep_images(vout)
                    for i in sorted(found - gt):
                        errs.append(f"render with {v} has an image missing from the ground truth: {i}")
                    allon |= found
                no_render = sorted(gt - grep - allon)
                rows.append((case, len(gt), len(grep & gt), len((grep | allon) & gt), no_render))
            except RuntimeError as e:
                errs.append(str(e))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if errs:
                failures.append(case)
                print(f"FAIL {case}")
                for e in errs:
                    print("   ", e)
            else:
                print(f"ok   {case}")
            for n in notes:
                print("    note:", n)
    finally:
        if repo:
            repo.close()
        shutil.rmtree(home, ignore_errors=True)

    tot = sum(r[1] for r in rows)
    dflt = sum(r[2] for r in rows)
    allr = sum(r[3] for r in rows)
    if args.markdown:
        print("\n| case | ground truth | default render | any render | found by no render |")
        print("|---|---:|---:|---:|---|")
        for c, n, d, a, nr in rows:
            print(f"| {c} | {n} | {d} | {a} | {', '.join('`'+i+'`' for i in nr) or '-'} |")
        print(f"| **total** | **{tot}** | **{dflt}** | **{allr}** | |")
    else:
        print()
        for c, n, d, a, nr in rows:
            print(f"{c:34} gt={n:2} default={d:2} any-render={a:2}  no-render={nr}")
    if tot:
        print(f"\ndefault-render recall: {dflt}/{tot} = {dflt / tot:.1%}; any-render: {allr}/{tot} = {allr / tot:.1%}")
    if failures:
        print(f"\n{len(failures)} case(s) failed: {', '.join(failures)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
