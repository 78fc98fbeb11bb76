//! Reading a service's published OpenAPI description (`/openapi.json`) in tests: the
//! operations it documents, their refusals, and whether a real answer fits a schema.

use std::collections::BTreeSet;

use serde_json::Value;

/// The methods an OpenAPI path item may hold, lower case as the description writes them.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every documented operation as (METHOD, path template), e.g. `("POST", "/v1/events")`.
pub fn operations(description: &Value) -> BTreeSet<(String, String)> {
    let paths = description["paths"].as_object().expect("an OpenAPI description has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// The operations with no 4xx response whose body is the error envelope, `schema`
/// (a component name such as `ErrorBody`).
pub fn operations_without_refusal(description: &Value, schema: &str) -> BTreeSet<(String, String)> {
    let reference = format!("#/components/schemas/{schema}");
    operations(description)
        .into_iter()
        .filter(|(method, path)| {
            let responses = description["paths"][path][method.to_lowercase()]["responses"].as_object().unwrap();
            !responses.iter().any(|(status, response)| {
                // 431 is the server's own, added to every operation: not the handler's.
                status.starts_with('4')
                    && status != "431"
                    && response["content"]["application/json"]["schema"]["$ref"] == reference
            })
        })
        .collect()
}

/// Every operation whose description has no `status` answer.
pub fn operations_without_status(description: &Value, status: &str) -> BTreeSet<(String, String)> {
    operations(description)
        .into_iter()
        .filter(|(method, path)| description["paths"][path][method.to_lowercase()]["responses"].get(status).is_none())
        .collect()
}

/// The `operationId` of every operation the description gives a request body.
pub fn operations_with_a_body(description: &Value) -> BTreeSet<String> {
    operations(description)
        .into_iter()
        .map(|(method, path)| &description["paths"][&path][method.to_lowercase()])
        .filter(|operation| operation.get("requestBody").is_some())
        .map(|operation| operation["operationId"].as_str().expect("every operation has an id").to_owned())
        .collect()
}

/// The component schema `name` of the description.
pub fn schema<'a>(description: &'a Value, name: &str) -> &'a Value {
    &description["components"]["schemas"][name]
}

/// Whether `value` fits `schema` as far as the error envelope's schema goes: `type`
/// (object or string), `required` and `properties`. Anything else in the schema is a
/// keyword this check does not know, and fails it rather than passing unchecked.
pub fn fits(value: &Value, schema: &Value) -> Result<(), String> {
    let schema = schema.as_object().ok_or("a schema is an object")?;
    for keyword in schema.keys() {
        if !["type", "required", "properties", "description"].contains(&keyword.as_str()) {
            return Err(format!("unchecked schema keyword {keyword:?}"));
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") if value.is_string() => Ok(()),
        Some("object") if value.is_object() => {
            for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = name.as_str().ok_or("required names are strings")?;
                value.get(name).ok_or(format!("{value} lacks required {name:?}"))?;
            }
            for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
                if let Some(field) = value.get(name) {
                    fits(field, property).map_err(|e| format!("{name}: {e}"))?;
                }
            }
            Ok(())
        }
        other => Err(format!("{value} is not of type {other:?}")),
    }
}

/// `template` with every `{parameter}` replaced by a UUID (any value routes the same).
pub fn concrete_path(template: &str) -> String {
    let mut path = String::new();
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('{') {
        let (_, after_parameter) = after.split_once('}').expect("a closed path parameter");
        path.push_str(before);
        path.push_str(&uuid::Uuid::nil().to_string());
        rest = after_parameter;
    }
    path.push_str(rest);
    path
}

/// The methods the description documents for path `template`, with `HEAD` wherever
/// `GET` is (axum answers it too): what a 405's `Allow` header must list.
pub fn allowed_methods(description: &Value, template: &str) -> BTreeSet<String> {
    let mut methods: BTreeSet<String> =
        operations(description).into_iter().filter(|(_, path)| path == template).map(|(m, _)| m).collect();
    if methods.contains("GET") {
        methods.insert("HEAD".to_owned());
    }
    methods
}

/// Sends every documented operation a bare request (no credentials, no body, every
/// path parameter the nil UUID) and checks the answer against the description: its
/// status is one the operation documents, it is 401 exactly where the operation
/// documents a security requirement, and a 4xx body fits the error envelope `ErrorBody`.
/// Returns each mismatch, said in words.
pub async fn bare_request_mismatches(http: &reqwest::Client, base: &str, description: &Value) -> Vec<String> {
    let envelope = schema(description, "ErrorBody");
    let mut mismatches = Vec::new();
    for (method, template) in operations(description) {
        let operation = &description["paths"][&template][method.to_lowercase()];
        let request = http.request(method.parse().unwrap(), format!("{base}{}", concrete_path(&template)));
        let response = request.send().await.expect("the service answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let operation_name = format!("{method} {template} answered {status} {body}");
        if operation["responses"].get(status.as_str()).is_none() {
            mismatches.push(format!("{operation_name}: status not documented"));
        }
        let secured = operation.get("security").is_some_and(|s| s.as_array().is_some_and(|s| !s.is_empty()));
        if secured != (status == reqwest::StatusCode::UNAUTHORIZED) {
            mismatches.push(format!("{operation_name}: documented security {secured}"));
        }
        if status.is_client_error() {
            if let Err(e) = fits(&body, envelope) {
                mismatches.push(format!("{operation_name}: not the error envelope: {e}"));
            }
        }
    }
    mismatches
}

/// Sends every documented path a method it does not document and checks the answer
/// is `405` listing in `Allow` exactly the documented methods (so no method is served
/// undocumented). Returns each mismatch, said in words.
pub async fn undocumented_method_mismatches(http: &reqwest::Client, base: &str, description: &Value) -> Vec<String> {
    let mut mismatches = Vec::new();
    let templates: BTreeSet<String> = operations(description).into_iter().map(|(_, path)| path).collect();
    for template in templates {
        let documented = allowed_methods(description, &template);
        let other = ["PATCH", "PUT", "DELETE", "POST"].into_iter().find(|m| !documented.contains(*m)).unwrap();
        let response = http
            .request(other.parse().unwrap(), format!("{base}{}", concrete_path(&template)))
            .send()
            .await
            .expect("the service answers");
        let allow: BTreeSet<String> = response
            .headers()
            .get(reqwest::header::ALLOW)
            .map(|v| v.to_str().unwrap().split(',').map(|m| m.trim().to_owned()).collect())
            .unwrap_or_default();
        if response.status() != reqwest::StatusCode::METHOD_NOT_ALLOWED || allow != documented {
            mismatches.push(format!(
                "{other} {template}: answered {} allowing {allow:?}, documented {documented:?}",
                response.status()
            ));
        }
    }
    mismatches
}

/// The copy of a service's description committed at `docs/openapi/<file>` (the contract
/// clients generate code from without running the service) against the one it serves:
/// an error naming the first difference, or, with `UPDATE_OPENAPI=1` in the
/// environment, the served one written there.
pub fn matches_committed(description: &Value, file: &str) -> Result<(), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi").join(file);
    let served = serde_json::to_string_pretty(description).expect("a JSON value prints") + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &served).map_err(|e| format!("writing {}: {e}", path.display()))?;
        return Ok(());
    }
    let committed = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match committed.lines().zip(served.lines()).position(|(c, s)| c != s) {
        None if committed == served => Ok(()),
        at => Err(format!(
            "docs/openapi/{file} differs from what the service serves (first at line {}): \
             write it again with `UPDATE_OPENAPI=1 cargo test … openapi` and commit it",
            at.map_or(committed.lines().count().min(served.lines().count()) + 1, |i| i + 1)
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fits_checks_types_and_required_properties() {
        let schema = json!({ "type": "object", "required": ["error"], "properties": {
            "error": { "type": "object", "required": ["code"], "properties": { "code": { "type": "string" } } }
        } });
        assert_eq!(fits(&json!({ "error": { "code": "x" } }), &schema), Ok(()));
        assert!(fits(&json!({ "error": { "code": 7 } }), &schema).is_err());
        assert!(fits(&json!({ "error": {} }), &schema).is_err());
        assert!(fits(&json!({ "error": { "code": "x" } }), &json!({ "type": "object", "oneOf": [] })).is_err());
    }

    #[test]
    fn concrete_path_fills_every_parameter() {
        let nil = uuid::Uuid::nil();
        assert_eq!(concrete_path("/v1/events/{event_id}/holds/{hold_id}"), format!("/v1/events/{nil}/holds/{nil}"));
        assert_eq!(concrete_path("/.well-known/jwks.json"), "/.well-known/jwks.json");
    }
}
