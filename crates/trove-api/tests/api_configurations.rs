//! Configuration groups (api.md §10): create, list, show, replace, edit, delete, the
//! instances of a group, value validation, paging, masking and project scoping, on
//! SQLite and, for the repository paths, MariaDB and PostgreSQL.

mod common;

use common::{redact, send, Resp, Seeded, TestApp, PROJECT};
use reqwest::Method;
use serde_json::{json, Value};
use trove_db::{ConfigParamRule, Instance};

const OTHER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// Adds float, boolean and secret-looking rules to the seeded 10.11 version.
async fn seed(app: &TestApp) -> Seeded {
    let s = app.seed().await;
    let rule = |name: &str, t: &str, min: Option<&str>, max: Option<&str>| ConfigParamRule {
        name: name.into(),
        restart_required: false,
        data_type: t.into(),
        min: min.map(Into::into),
        max: max.map(Into::into),
    };
    app.db()
        .config_params_upsert(
            &s.v1011,
            &[
                rule("long_query_time", "float", Some("0"), Some("3600")),
                rule("autocommit", "boolean", None, None),
                rule("rpl_password", "string", None, None),
                rule("offset", "integer", Some("-10"), Some("10")),
            ],
        )
        .await
        .unwrap();
    s
}

async fn post(app: &TestApp, body: Value) -> Resp {
    send(app.v1(Method::POST, "/configurations").json(&body)).await
}

async fn create_ok(app: &TestApp, name: &str, values: Value) -> String {
    let r = post(
        app,
        json!({"configuration": {"name": name, "values": values,
                                 "datastore": {"type": "mariadb", "version": "10.11"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["configuration"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn put(app: &TestApp, id: &str, body: Value) -> Resp {
    send(
        app.v1(Method::PUT, &format!("/configurations/{id}"))
            .json(&body),
    )
    .await
}

async fn patch(app: &TestApp, id: &str, body: Value) -> Resp {
    send(
        app.v1(Method::PATCH, &format!("/configurations/{id}"))
            .json(&body),
    )
    .await
}

/// An instance row of `project` using group `config` (as attach would leave it).
async fn instance_using(
    app: &TestApp,
    s: &Seeded,
    project: &str,
    name: &str,
    config: &str,
) -> String {
    let inst = Instance {
        id: trove_db::new_id(),
        name: Some(name.into()),
        tenant_id: Some(project.into()),
        datastore_version_id: Some(s.v1011.clone()),
        configuration_id: Some(config.into()),
        flavor_id: Some("2".into()),
        ..Instance::default()
    };
    app.db().instance_create(&inst).await.unwrap().id
}

#[tokio::test]
async fn create_show_and_list() {
    let app = TestApp::start().await;
    let s = seed(&app).await;
    let r = post(
        &app,
        json!({"configuration": {
            "name": "tuned", "description": "bigger buffers",
            "datastore": {"type": "mariadb", "version": "10.11", "version_number": "10.11.6"},
            "values": {"max_connections": 400, "autocommit": true, "long_query_time": 2.5,
                       "character_set_server": "utf8mb4", "rpl_password": "s3cret",
                       "max_binlog_cache_size": 18446744073709551615u64}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let created = r.json();
    // Create echoes the values as given (secrets masked), instance_count 0.
    insta::assert_json_snapshot!("configuration_create", redact(&created));
    let id = created["configuration"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["configuration"]["datastore_version_id"],
        s.v1011.as_str()
    );

    let show = app.get(&format!("/configurations/{id}")).await;
    assert_eq!(show.status, 200, "{}", show.text);
    let shown = show.json();
    // Show types the stored text back: booleans from 1/0, floats, huge integers.
    assert_eq!(shown["configuration"]["values"]["autocommit"], true);
    assert_eq!(shown["configuration"]["values"]["long_query_time"], 2.5);
    assert_eq!(
        shown["configuration"]["values"]["max_binlog_cache_size"],
        json!(18446744073709551615u64)
    );
    assert_eq!(shown["configuration"]["values"]["rpl_password"], "***");
    insta::assert_json_snapshot!("configuration_show", redact(&shown));

    let list = app.get("/configurations").await;
    assert_eq!(list.status, 200);
    assert!(list.json().get("links").is_none());
    insta::assert_json_snapshot!("configuration_list", redact(&list.json()));

    // The stored text: booleans as 1/0, numbers as written.
    let stored: Vec<(String, Option<String>)> = app
        .db()
        .configuration_parameters(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.configuration_key, p.configuration_value))
        .collect();
    assert!(stored.contains(&("autocommit".into(), Some("1".into()))));
    assert!(stored.contains(&("long_query_time".into(), Some("2.5".into()))));
}

#[tokio::test]
async fn datastore_resolution() {
    let app = TestApp::start().await;
    let s = seed(&app).await;
    // Default version of the named datastore.
    let r = post(
        &app,
        json!({"configuration": {"name": "d", "values": {}, "datastore": {"type": "mariadb"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["configuration"]["datastore_version_name"], "10.11");
    // By ids.
    let r = post(
        &app,
        json!({"configuration": {"name": "d", "values": {},
               "datastore": {"type": s.mariadb, "version": s.v1011}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // No datastore and no default datastore.
    let r = post(&app, json!({"configuration": {"name": "d", "values": {}}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Please specify datastore. No default datastore is defined."
    );
    let r = post(
        &app,
        json!({"configuration": {"name": "d", "values": {}, "datastore": {"type": "nosuch"}}}),
    )
    .await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        "Datastore 'nosuch' cannot be found."
    );
    let r = post(
        &app,
        json!({"configuration": {"name": "d", "values": {},
               "datastore": {"type": "mariadb", "version": "9.9"}}}),
    )
    .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Datastore version '9.9' cannot be found."
    );
    // postgresql has no default version.
    let r = post(
        &app,
        json!({"configuration": {"name": "d", "values": {}, "datastore": {"type": "postgresql"}}}),
    )
    .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Default version for datastore 'postgresql' not found."
    );
    // An inactive version is accepted, but it has no rules: 422.
    let r = post(
        &app,
        json!({"configuration": {"name": "d", "values": {},
               "datastore": {"type": "mariadb", "version": "10.6"}}}),
    )
    .await;
    assert_eq!(
        r.fault(422, "unprocessableEntity"),
        "Configuration groups are not supported for this datastore: mariadb 10.6"
    );
    app.db()
        .config_params_upsert(
            &s.v106,
            &[ConfigParamRule {
                name: "max_connections".into(),
                restart_required: false,
                data_type: "integer".into(),
                min: None,
                max: None,
            }],
        )
        .await
        .unwrap();
    let r = post(
        &app,
        json!({"configuration": {"name": "d", "values": {"max_connections": 5},
               "datastore": {"type": "mariadb", "version": "10.6"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["configuration"]["datastore_version_number"],
        "10.6.16"
    );
}

#[tokio::test]
async fn schema_errors_are_400() {
    let app = TestApp::start().await;
    seed(&app).await;
    let cases = [
        (
            json!({}),
            "Validation error: 'configuration' is a required property",
        ),
        (
            json!({"configuration": {}}),
            "Validation error: configuration 'values' is a required property; \
             configuration 'name' is a required property",
        ),
        (
            json!({"configuration": {"name": "x", "values": [1]}}),
            "Validation error: configuration['values'] [1] is not of type 'object'",
        ),
        (
            json!({"configuration": {"name": "--", "values": {}}}),
            "Validation error: configuration['name'] '--' does not match '^.*[0-9a-zA-Z]+.*$'",
        ),
        (
            json!({"configuration": {"name": "x", "values": {}, "description": ""}}),
            "Validation error: configuration['description'] '' is too short",
        ),
        (
            json!({"configuration": {"name": "x", "values": {}, "datastore": "mariadb"}}),
            "Validation error: configuration['datastore'] 'mariadb' is not of type 'object'",
        ),
    ];
    // Longer names than the table holds are refused like schema errors.
    let long = "n".repeat(65);
    assert_eq!(
        post(&app, json!({"configuration": {"name": long, "values": {}}}))
            .await
            .fault(400, "badRequest"),
        format!("Validation error: configuration['name'] '{long}' is too long")
    );
    for (body, msg) in cases {
        assert_eq!(post(&app, body).await.fault(400, "badRequest"), msg);
    }
    let r = send(
        app.v1(Method::POST, "/configurations")
            .header("content-type", "application/json")
            .body("{nope"),
    )
    .await;
    assert_eq!(r.fault(400, "badRequest"), "Malformed request body");
    let id = create_ok(&app, "g", json!({})).await;
    put(&app, &id, json!({"configuration": {"values": 1}}))
        .await
        .fault(400, "badRequest");
    put(&app, &id, json!({"values": {}}))
        .await
        .fault(400, "badRequest");
    patch(&app, &id, json!({"configuration": {"values": "x"}}))
        .await
        .fault(400, "badRequest");
}

#[tokio::test]
async fn value_validation_is_422() {
    let app = TestApp::start().await;
    seed(&app).await;
    let try_values = |values: Value| {
        let app = &app;
        async move {
            post(
                app,
                json!({"configuration": {"name": "v", "values": values,
                                         "datastore": {"type": "mariadb"}}}),
            )
            .await
        }
    };
    let refused = [
        (
            json!({"nosuch": 1}),
            "The configuration parameter nosuch is not supported for this datastore: mariadb 10.11.",
        ),
        // integer: strings and floats refused.
        (
            json!({"max_connections": "400"}),
            "The value provided for the configuration parameter max_connections is not of type integer.",
        ),
        (
            json!({"max_connections": 400.0}),
            "The value provided for the configuration parameter max_connections is not of type integer.",
        ),
        // float: an integral JSON number is refused.
        (
            json!({"long_query_time": 5}),
            "The value provided for the configuration parameter long_query_time is not of type float.",
        ),
        (
            json!({"autocommit": 1}),
            "The value provided for the configuration parameter autocommit is not of type boolean.",
        ),
        (
            json!({"character_set_server": 8}),
            "The value provided for the configuration parameter character_set_server is not of type string.",
        ),
        (
            json!({"character_set_server": null}),
            "The value provided for the configuration parameter character_set_server is not of type string.",
        ),
        (
            json!({"max_connections": 0}),
            "The value for the configuration parameter max_connections is less than the minimum allowed: 1",
        ),
        (
            json!({"max_connections": 100001}),
            "The value for the configuration parameter max_connections is greater than the maximum allowed: 100000",
        ),
        (
            json!({"offset": -11}),
            "The value for the configuration parameter offset is less than the minimum allowed: -10",
        ),
        (
            json!({"max_binlog_cache_size": -1}),
            "The value for the configuration parameter max_binlog_cache_size is less than the minimum allowed: 0",
        ),
        (
            json!({"long_query_time": -0.5}),
            "The value for the configuration parameter long_query_time is less than the minimum allowed: 0",
        ),
        (
            json!({"long_query_time": 3600.5}),
            "The value for the configuration parameter long_query_time is greater than the maximum allowed: 3600",
        ),
    ];
    for (values, msg) in refused {
        let r = try_values(values.clone()).await;
        assert_eq!(r.fault(422, "unprocessableEntity"), msg, "{values}");
    }
    // Accepted: case-insensitive keys, booleans as integers (bounds skipped), floats
    // with a fraction or exponent, the largest unsigned 64-bit bound.
    for values in [
        json!({"MAX_CONNECTIONS": 1}),
        json!({"max_connections": true}),
        json!({"max_connections": false}),
        json!({"long_query_time": 5.0}),
        json!({"long_query_time": 1e3}),
        json!({"max_binlog_cache_size": 18446744073709551615u64}),
        json!({"max_binlog_cache_size": 0}),
        json!({"offset": -10}),
        json!({"autocommit": false}),
    ] {
        let r = try_values(values.clone()).await;
        assert_eq!(r.status, 200, "{values}: {}", r.text);
        assert_eq!(r.json()["configuration"]["values"], values);
    }
    // Nothing was stored by refused requests.
    let listed = app.get("/configurations").await.json();
    assert_eq!(listed["configurations"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn put_replaces_and_patch_merges() {
    let app = TestApp::start().await;
    seed(&app).await;
    let id = create_ok(
        &app,
        "g",
        json!({"max_connections": 10, "autocommit": true}),
    )
    .await;
    let path = format!("/configurations/{id}");

    // PATCH merges: new keys added, given keys changed, others kept. 200, empty.
    let r = patch(
        &app,
        &id,
        json!({"configuration": {"values": {"max_connections": 20, "long_query_time": 0.25}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.is_empty());
    let v = app.get(&path).await.json();
    assert_eq!(
        v["configuration"]["values"],
        json!({"max_connections": 20, "autocommit": true, "long_query_time": 0.25})
    );
    assert_eq!(v["configuration"]["name"], "g");

    // PATCH validation refuses the whole request.
    let r = patch(
        &app,
        &id,
        json!({"configuration": {"values": {"max_connections": 30, "nosuch": 1}}}),
    )
    .await;
    r.fault(422, "unprocessableEntity");
    assert_eq!(
        app.get(&path).await.json()["configuration"]["values"]["max_connections"],
        20
    );

    // PUT replaces every value and renames. 202, empty.
    let r = put(
        &app,
        &id,
        json!({"configuration": {"values": {"character_set_server": "utf8"},
                                 "name": "g2", "description": "v2"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty());
    let v = app.get(&path).await.json();
    assert_eq!(
        v["configuration"]["values"],
        json!({"character_set_server": "utf8"})
    );
    assert_eq!(v["configuration"]["name"], "g2");
    assert_eq!(v["configuration"]["description"], "v2");

    // PUT validation: 422, nothing changed.
    put(
        &app,
        &id,
        json!({"configuration": {"values": {"autocommit": "yes"}}}),
    )
    .await
    .fault(422, "unprocessableEntity");
    assert_eq!(app.get(&path).await.json()["configuration"]["name"], "g2");

    // PUT without values clears them; name and description stay.
    assert_eq!(
        put(&app, &id, json!({"configuration": {}})).await.status,
        202
    );
    let v = app.get(&path).await.json();
    assert_eq!(v["configuration"]["values"], json!({}));
    assert_eq!(v["configuration"]["description"], "v2");

    // Unknown groups.
    let unknown = "0f3c1c3e-5d5a-4c4b-9a0e-2b6f8d1e7a90";
    let msg = format!("Configuration group with ID {unknown} could not be found.");
    assert_eq!(
        put(&app, unknown, json!({"configuration": {}}))
            .await
            .fault(404, "itemNotFound"),
        msg
    );
    assert_eq!(
        patch(&app, unknown, json!({"configuration": {"values": {}}}))
            .await
            .fault(404, "itemNotFound"),
        msg
    );
}

#[tokio::test]
async fn delete_and_instances() {
    let app = TestApp::start().await;
    let s = seed(&app).await;
    let id = create_ok(&app, "g", json!({"max_connections": 10})).await;
    let path = format!("/configurations/{id}");
    let a = instance_using(&app, &s, PROJECT, "orders-db", &id).await;
    let b = instance_using(&app, &s, PROJECT, "users-db", &id).await;
    let foreign = instance_using(&app, &s, OTHER, "theirs", &id).await;

    // instance_count and the instance list: own project for members, all for admins.
    assert_eq!(
        app.get(&path).await.json()["configuration"]["instance_count"],
        2
    );
    assert_eq!(
        app.get_admin(&path).await.json()["configuration"]["instance_count"],
        3
    );
    let listed = app.get(&format!("{path}/instances")).await;
    assert_eq!(listed.status, 200);
    let mut ids = [a.clone(), b.clone()];
    ids.sort();
    let names: Vec<Value> = listed.json()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(names, ids.iter().map(|i| json!(i)).collect::<Vec<_>>());
    let mut by_name = listed.json();
    by_name["instances"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|i| i["name"].as_str().unwrap().to_string());
    insta::assert_json_snapshot!("configuration_instances", redact(&by_name));
    let admin = app.get_admin(&format!("{path}/instances")).await.json();
    assert_eq!(admin["instances"].as_array().unwrap().len(), 3);
    assert!(admin["instances"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == foreign.as_str()));

    // Paged by id.
    let page = app.get(&format!("{path}/instances?limit=1")).await.json();
    assert_eq!(page["instances"][0]["id"], ids[0].as_str());
    let next = page["links"][0]["href"].as_str().unwrap();
    assert!(next.starts_with("https://"), "{next}");
    assert!(next.contains(&format!("marker={}", ids[0])), "{next}");
    let page2 = app
        .get(&format!("{path}/instances?limit=1&marker={}", ids[0]))
        .await
        .json();
    assert_eq!(page2["instances"][0]["id"], ids[1].as_str());
    assert!(page2.get("links").is_none());

    // Values of a group in use go to the guests, which this API cannot reach.
    put(&app, &id, json!({"configuration": {"values": {}}}))
        .await
        .fault(503, "serviceUnavailable");
    patch(&app, &id, json!({"configuration": {"values": {}}}))
        .await
        .fault(503, "serviceUnavailable");

    // DELETE refused while the project's instances use it.
    let r = send(app.v1(Method::DELETE, &path)).await;
    assert!(r
        .fault(400, "badRequest")
        .starts_with("A configuration group cannot be deleted if it is associated with one or more non-terminated instances."));
    app.db().instance_soft_delete(&a).await.unwrap();
    app.db().instance_soft_delete(&b).await.unwrap();
    assert_eq!(
        app.get(&path).await.json()["configuration"]["instance_count"],
        0
    );
    // Another project's instance does not block the owner.
    let r = send(app.v1(Method::DELETE, &path)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty());
    let msg = format!("Configuration group with ID {id} could not be found.");
    assert_eq!(app.get(&path).await.fault(404, "itemNotFound"), msg);
    let r = send(app.v1(Method::DELETE, &path)).await;
    assert_eq!(r.fault(404, "itemNotFound"), msg);
    assert_eq!(
        app.get(&format!("{path}/instances"))
            .await
            .fault(404, "itemNotFound"),
        msg
    );
}

#[tokio::test]
async fn paging_by_id_with_a_cap_of_20() {
    let app = TestApp::start().await;
    seed(&app).await;
    let mut ids = Vec::new();
    for i in 0..21 {
        ids.push(create_ok(&app, &format!("g{i}"), json!({})).await);
    }
    ids.sort();
    let first = app.get("/configurations").await.json();
    let items = first["configurations"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    assert_eq!(items[0]["id"], ids[0].as_str());
    let href = first["links"][0]["href"].as_str().unwrap();
    assert_eq!(first["links"][0]["rel"], "next");
    assert!(
        href.ends_with(&format!("/configurations?marker={}", ids[19])),
        "{href}"
    );
    let last = app
        .get(&format!("/configurations?marker={}", ids[19]))
        .await
        .json();
    assert_eq!(last["configurations"].as_array().unwrap().len(), 1);
    assert!(last.get("links").is_none());
    // limit above the cap is capped; limit below it pages.
    let capped = app.get("/configurations?limit=100").await.json();
    assert_eq!(capped["configurations"].as_array().unwrap().len(), 20);
    let small = app.get("/configurations?limit=5").await.json();
    assert_eq!(small["configurations"].as_array().unwrap().len(), 5);
    assert!(small["links"][0]["href"]
        .as_str()
        .unwrap()
        .contains(&format!("limit=5&marker={}", ids[4])));
    app.get("/configurations?limit=0")
        .await
        .fault(400, "badRequest");
}

#[tokio::test]
async fn other_projects_groups_are_404_unless_admin() {
    let app = TestApp::start().await;
    let s = seed(&app).await;
    let id = create_ok(&app, "mine", json!({"max_connections": 5})).await;
    let other = |method: Method, path: &str| app.request(method, &format!("/v1.0/{OTHER}{path}"));
    let msg = format!("Configuration group with ID {id} could not be found.");
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::GET, "/instances"),
        (Method::DELETE, ""),
    ] {
        let r = send(other(
            method.clone(),
            &format!("/configurations/{id}{suffix}"),
        ))
        .await;
        assert_eq!(r.fault(404, "itemNotFound"), msg, "{method} {suffix}");
    }
    let r = send(
        other(Method::PUT, &format!("/configurations/{id}"))
            .json(&json!({"configuration": {"name": "stolen"}})),
    )
    .await;
    assert_eq!(r.fault(404, "itemNotFound"), msg);
    let r = send(
        other(Method::PATCH, &format!("/configurations/{id}"))
            .json(&json!({"configuration": {"values": {}}})),
    )
    .await;
    assert_eq!(r.fault(404, "itemNotFound"), msg);
    let listed = send(other(Method::GET, "/configurations")).await.json();
    assert_eq!(listed, json!({"configurations": []}));

    // An admin of another project sees and changes it through its own URL.
    let r =
        send(other(Method::GET, &format!("/configurations/{id}")).header("x-roles", "admin")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(
        other(Method::PUT, &format!("/configurations/{id}"))
            .header("x-roles", "admin")
            .json(&json!({"configuration": {"name": "renamed"}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        app.get(&format!("/configurations/{id}")).await.json()["configuration"]["name"],
        "renamed"
    );

    // Admin listing covers other projects' groups.
    let theirs = send(
        other(Method::POST, "/configurations").json(&json!({"configuration": {
            "name": "theirs", "values": {}, "datastore": {"type": "mariadb"}}})),
    )
    .await;
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    let theirs = theirs.json()["configuration"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    instance_using(&app, &s, OTHER, "theirs-db", &theirs).await;
    let member = app.get("/configurations").await.json();
    assert_eq!(member["configurations"].as_array().unwrap().len(), 1);
    let admin = app.get_admin("/configurations").await.json();
    let mut listed: Vec<&str> = admin["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut want = vec![id.as_str(), theirs.as_str()];
    want.sort();
    listed.sort();
    assert_eq!(listed, want);
}

#[tokio::test]
async fn policy_denials_are_403() {
    let enforcer = trove_api::policy::Enforcer::with_overrides([
        ("configuration:create", "!"),
        ("configuration:show", "!"),
    ])
    .unwrap();
    let app = TestApp::start_with(common::Options {
        enforcer: Some(std::sync::Arc::new(enforcer)),
        ..common::Options::default()
    })
    .await;
    seed(&app).await;
    let r = post(
        &app,
        json!({"configuration": {"name": "x", "values": {}, "datastore": {"type": "mariadb"}}}),
    )
    .await;
    assert_eq!(
        r.fault(403, "forbidden"),
        "Policy doesn't allow configuration:create to be performed."
    );
    let id = create_in_db(&app).await;
    assert_eq!(
        app.get(&format!("/configurations/{id}"))
            .await
            .fault(403, "forbidden"),
        "Policy doesn't allow configuration:show to be performed."
    );
    // Unknown groups are 404 before policy is consulted.
    app.get("/configurations/0f3c1c3e-5d5a-4c4b-9a0e-2b6f8d1e7a90")
        .await
        .fault(404, "itemNotFound");
}

/// A group of `PROJECT` written straight to the database.
async fn create_in_db(app: &TestApp) -> String {
    let v = app
        .db()
        .datastore_version_find(
            &app.db().datastore_get("mariadb").await.unwrap().id,
            "10.11",
            None,
        )
        .await
        .unwrap();
    let c = trove_db::Configuration {
        id: trove_db::new_id(),
        name: "direct".into(),
        tenant_id: PROJECT.into(),
        datastore_version_id: v.id,
        ..trove_db::Configuration::default()
    };
    app.db().configuration_create(&c, &[]).await.unwrap().id
}

/// The repository-touching paths on every backend of `TROVE_TEST_BACKENDS`.
#[tokio::test]
async fn configuration_routes_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        let s = seed(&app).await;
        let r = post(
            &app,
            json!({"configuration": {
                "name": "tuned", "description": "bigger buffers",
                "datastore": {"type": "mariadb", "version": "10.11", "version_number": "10.11.6"},
                "values": {"max_connections": 400, "autocommit": true, "long_query_time": 2.5,
                           "character_set_server": "utf8mb4", "rpl_password": "s3cret",
                           "max_binlog_cache_size": 18446744073709551615u64}}}),
        )
        .await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        insta::assert_json_snapshot!("configuration_create", redact(&r.json()));
        let id = r.json()["configuration"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let path = format!("/configurations/{id}");
        let shown = app.get(&path).await.json();
        insta::assert_json_snapshot!("configuration_show", redact(&shown));
        let list = app.get("/configurations").await.json();
        insta::assert_json_snapshot!("configuration_list", redact(&list));

        let r = patch(
            &app,
            &id,
            json!({"configuration": {"values": {"max_connections": 20, "offset": -3}}}),
        )
        .await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        // Values longer than the column are refused before the database sees them.
        patch(
            &app,
            &id,
            json!({"configuration": {"values": {"character_set_server": "x".repeat(129)}}}),
        )
        .await
        .fault(422, "unprocessableEntity");
        let v = app.get(&path).await.json();
        assert_eq!(
            v["configuration"]["values"]["max_connections"], 20,
            "{backend}"
        );
        assert_eq!(v["configuration"]["values"]["offset"], -3, "{backend}");
        assert_eq!(
            v["configuration"]["values"]["autocommit"], true,
            "{backend}"
        );
        let r = put(
            &app,
            &id,
            json!({"configuration": {"values": {"autocommit": false}, "name": "t2"}}),
        )
        .await;
        assert_eq!(r.status, 202, "{backend}: {}", r.text);
        let v = app.get(&path).await.json();
        assert_eq!(
            v["configuration"]["values"],
            json!({"autocommit": false}),
            "{backend}"
        );
        assert_eq!(v["configuration"]["name"], "t2", "{backend}");

        let inst = instance_using(&app, &s, PROJECT, "db1", &id).await;
        assert_eq!(
            app.get(&path).await.json()["configuration"]["instance_count"],
            1
        );
        let insts = app.get(&format!("{path}/instances")).await.json();
        assert_eq!(
            insts,
            json!({"instances": [{"id": inst, "name": "db1"}]}),
            "{backend}"
        );
        send(app.v1(Method::DELETE, &path))
            .await
            .fault(400, "badRequest");
        app.db().instance_soft_delete(&inst).await.unwrap();
        let r = send(app.v1(Method::DELETE, &path)).await;
        assert_eq!(r.status, 202, "{backend}: {}", r.text);
        app.get(&path).await.fault(404, "itemNotFound");
        let other = send(app.request(Method::GET, &format!("/v1.0/{OTHER}/configurations"))).await;
        assert_eq!(other.json(), json!({"configurations": []}), "{backend}");
    }
}

fn openstack_bin() -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("target/venvs/troveclient/bin/openstack");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/client-venv.sh (scripts/test.sh does)",
        bin.display()
    );
    bin
}

async fn osc(app: &TestApp, args: &[&str]) -> (bool, String) {
    let endpoint = format!("{}/v1.0/{PROJECT}", app.base);
    let out = tokio::process::Command::new(openstack_bin())
        .args(["--os-auth-type", "none", "--os-endpoint", &endpoint])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run openstack");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openstack database configuration ...` (python-troveclient 8.11) against the API.
/// Needs the client virtualenv that `scripts/client-venv.sh` makes, like
/// `troveclient_compat.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_configuration_commands_work() {
    let app = TestApp::start().await;
    seed(&app).await;
    let (ok, out) = osc(
        &app,
        &[
            "database",
            "configuration",
            "create",
            "tuned",
            r#"{"max_connections": 400, "autocommit": true, "rpl_password": "x"}"#,
            "--datastore",
            "mariadb",
            "--datastore-version",
            "10.11",
            "--description",
            "d",
            "-f",
            "json",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["datastore_version_number"], "10.11.6", "{out}");

    let (ok, out) = osc(&app, &["database", "configuration", "list"]).await;
    assert!(
        ok && out.contains("tuned") && out.contains("10.11.6"),
        "{out}"
    );

    // `parameter set` (PATCH, merges) and `set` (PUT, replaces) take the id as given.
    let (ok, out) = osc(
        &app,
        &[
            "database",
            "configuration",
            "parameter",
            "set",
            &id,
            r#"{"max_connections": 500}"#,
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = osc(
        &app,
        &["database", "configuration", "show", "tuned", "-f", "json"],
    )
    .await;
    assert!(ok, "{out}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    let values: Value = serde_json::from_str(shown["values"].as_str().unwrap()).unwrap();
    assert_eq!(
        values,
        json!({"max_connections": 500, "autocommit": true, "rpl_password": "***"})
    );
    let (ok, out) = osc(
        &app,
        &[
            "database",
            "configuration",
            "set",
            &id,
            r#"{"autocommit": false}"#,
            "--name",
            "tuned2",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let v = app.get(&format!("/configurations/{id}")).await.json();
    assert_eq!(v["configuration"]["values"], json!({"autocommit": false}));
    assert_eq!(v["configuration"]["name"], "tuned2");

    let (ok, out) = osc(&app, &["database", "configuration", "instances", "tuned2"]).await;
    assert!(ok, "{out}");

    let (ok, out) = osc(
        &app,
        &[
            "database",
            "configuration",
            "create",
            "bad",
            r#"{"max_connections": 0}"#,
            "--datastore",
            "mariadb",
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains(
            "The value for the configuration parameter max_connections is less than the \
             minimum allowed: 1 (HTTP 422)"
        ),
        "{out}"
    );

    let (ok, out) = osc(&app, &["database", "configuration", "delete", "tuned2"]).await;
    assert!(ok, "{out}");
    let (ok, out) = osc(&app, &["database", "configuration", "show", &id]).await;
    assert!(!ok);
    assert!(
        out.contains("No configuration with a name or ID of"),
        "{out}"
    );
}
