//! Runs the Argo CD health check for ChartMirror (`charts/lazyoci-operator/argocd/health.lua`)
//! against every case in `health_test.yaml`, the layout Argo CD uses upstream
//! (`resource_customizations/<group>/<kind>/health_test.yaml` + `testdata/`).
//!
//! Argo CD runs health scripts in gopher-lua (Lua 5.1) with the object in the global `obj`
//! and takes the returned table's `status` and `message`. Here the script runs in Lua 5.4 with
//! only the base, string, table and math libraries, and JSON nulls become nil, as in Argo CD.

use std::path::{Path, PathBuf};

use mlua::{Lua, LuaOptions, LuaSerdeExt, SerializeOptions, StdLib, Table};
use serde_json::Value;

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/lazyoci-operator/argocd")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Evaluates `script` with `obj` set to `object`, as Argo CD does; returns (status, message).
fn run_health(script: &str, object: &Value) -> Result<(String, String), String> {
    let lua = Lua::new_with(
        StdLib::STRING | StdLib::TABLE | StdLib::MATH,
        LuaOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false)
        .set_array_metatable(false);
    let obj = lua
        .to_value_with(object, options)
        .map_err(|e| format!("convert object: {e}"))?;
    lua.globals().set("obj", obj).map_err(|e| e.to_string())?;
    let hs: Table = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .map_err(|e| format!("run health.lua: {e}"))?;
    let status: Option<String> = hs.get("status").map_err(|e| e.to_string())?;
    let message: Option<String> = hs.get("message").map_err(|e| e.to_string())?;
    Ok((
        status.ok_or("hs.status is not set")?,
        message.unwrap_or_default(),
    ))
}

struct Case {
    input: String,
    status: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let doc: Value = serde_saphyr::from_str(&read(&argocd_dir().join("health_test.yaml")))
        .expect("health_test.yaml parses");
    let tests = doc["tests"].as_array().expect("health_test.yaml: tests[]");
    tests
        .iter()
        .map(|t| Case {
            input: t["inputPath"].as_str().expect("inputPath").to_string(),
            status: t["healthStatus"]["status"]
                .as_str()
                .expect("healthStatus.status")
                .to_string(),
            message: t["healthStatus"]["message"]
                .as_str()
                .expect("healthStatus.message")
                .to_string(),
        })
        .collect()
}

#[test]
fn every_case_in_health_test_yaml_gets_its_status_and_message() {
    let script = read(&argocd_dir().join("health.lua"));
    let cases = cases();
    assert!(cases.len() >= 10, "expected all cases, got {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let object: Value = serde_saphyr::from_str(&read(&argocd_dir().join(&case.input)))
            .unwrap_or_else(|e| panic!("{}: {e}", case.input));
        match run_health(&script, &object) {
            Ok((status, message)) if status == case.status && message == case.message => {}
            Ok((status, message)) => failures.push(format!(
                "{}: got {status} {message:?}, want {} {:?}",
                case.input, case.status, case.message
            )),
            Err(e) => failures.push(format!("{}: {e}", case.input)),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_status_argo_cd_can_show_is_covered() {
    let statuses: Vec<String> = cases().into_iter().map(|c| c.status).collect();
    for want in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(statuses.iter().any(|s| s == want), "no case for {want}");
    }
}

#[test]
fn every_testdata_file_is_a_case() {
    let inputs: Vec<String> = cases().into_iter().map(|c| c.input).collect();
    let mut files: Vec<String> = std::fs::read_dir(argocd_dir().join("testdata"))
        .unwrap()
        .map(|e| format!("testdata/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.sort();
    for f in files {
        assert!(
            inputs.contains(&f),
            "{f} is not referenced by health_test.yaml"
        );
    }
}

/// Shapes the fixtures do not cover: no metadata.generation, a condition without reason or
/// message, an empty conditions list, explicit nulls.
#[test]
fn sparse_objects_do_not_break_the_script() {
    let script = read(&argocd_dir().join("health.lua"));
    let cases = [
        (
            serde_json::json!({"metadata": {"name": "a", "generation": 1}, "spec": {},
                "status": {"observedGeneration": 1, "conditions": []}}),
            ("Progressing", "Reconciling"),
        ),
        (
            serde_json::json!({"metadata": {"name": "a"},
                "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "message": "ok"}]}}),
            ("Healthy", "ok"),
        ),
        (
            serde_json::json!({"metadata": {"name": "a", "generation": 1},
                "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]}}),
            ("Degraded", ""),
        ),
        (
            serde_json::json!({"metadata": {"name": "a", "generation": 1},
                "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]}}),
            ("Healthy", ""),
        ),
        (
            serde_json::json!({"metadata": {"name": "a", "generation": 1}, "spec": {"suspend": null},
                "status": {"observedGeneration": null, "conditions": [{"type": "Ready", "status": "True"}]}}),
            (
                "Progressing",
                "Waiting for the operator to observe generation 1",
            ),
        ),
    ];
    for (object, (status, message)) in cases {
        let got = run_health(&script, &object).unwrap_or_else(|e| panic!("{object}: {e}"));
        assert_eq!(got, (status.to_string(), message.to_string()), "{object}");
    }
}

/// `argocd/argocd-cm.yaml` (the snippet users apply) must carry exactly `health.lua`.
#[test]
fn the_argocd_cm_snippet_embeds_health_lua_verbatim() {
    let script = read(&argocd_dir().join("health.lua"));
    let cm: Value = serde_saphyr::from_str(&read(&argocd_dir().join("argocd-cm.yaml")))
        .expect("argocd-cm.yaml parses");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let embedded = cm["data"]["resource.customizations.health.lazyoci.io_ChartMirror"]
        .as_str()
        .expect("data.resource.customizations.health.lazyoci.io_ChartMirror");
    assert_eq!(
        embedded, script,
        "regenerate argocd-cm.yaml from health.lua (see charts/lazyoci-operator/README.md)"
    );
}
