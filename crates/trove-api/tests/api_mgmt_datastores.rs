//! Management datastore versions and configuration parameters (api.md §19.4, §19.6).

mod common;

use common::{send, Resp, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Resp {
    let mut rb = app.v1_admin(method, path);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    send(rb).await
}

fn accepted(r: &Resp) {
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty(), "body: {}", r.text);
}

fn by_name<'a>(list: &'a Value, ds: &str, name: &str) -> &'a Value {
    list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["datastore_name"] == ds && v["name"] == name)
        .unwrap_or_else(|| panic!("{ds} {name} not in {list}"))
}

#[tokio::test]
async fn non_admins_get_401() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    for (method, path, body) in [
        (Method::GET, "/mgmt/datastore-versions".to_string(), None),
        (
            Method::POST,
            "/mgmt/datastore-versions".to_string(),
            Some(json!({"version": {}})),
        ),
        (
            Method::GET,
            format!("/mgmt/datastore-versions/{}", s.v1011),
            None,
        ),
        (
            Method::PATCH,
            format!("/mgmt/datastore-versions/{}", s.v1011),
            Some(json!({"active": false})),
        ),
        (
            Method::DELETE,
            format!("/mgmt/datastore-versions/{}", s.v106),
            None,
        ),
        (
            Method::GET,
            format!("/mgmt/datastores/versions/{}/parameters", s.v1011),
            None,
        ),
        (
            Method::DELETE,
            format!(
                "/mgmt/datastores/versions/{}/parameters/max_connections",
                s.v1011
            ),
            None,
        ),
    ] {
        let mut rb = app.v1(method, &path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = send(rb).await;
        assert_eq!(
            r.fault(401, "unauthorized"),
            "User does not have admin privileges.",
            "{path}"
        );
    }
    // Nothing changed.
    let v = app.db().datastore_version_get(&s.v1011).await.unwrap();
    assert!(v.active);
    assert!(app
        .db()
        .config_param_get(&s.v1011, "max_connections")
        .await
        .is_ok());
}

#[tokio::test]
async fn versions_list_show_create_and_update() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let list = app.get_admin("/mgmt/datastore-versions").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    assert_eq!(list["versions"].as_array().unwrap().len(), 3);
    let v = by_name(&list, "mariadb", "10.11");
    assert_eq!(
        v,
        &json!({"id": s.v1011, "name": "10.11", "version": "10.11.6",
            "datastore_id": s.mariadb, "datastore_name": "mariadb", "datastore_manager": "mariadb",
            "image": null, "image_tags": ["trove", "mariadb"], "packages": [""], "active": true,
            "registry_ext": "trove.guestagent.datastore.mariadb.manager.Manager",
            "repl_strategy": "trove.guestagent.strategies.replication.mariadb_gtid.MariaDBGTIDReplication",
            "default": true})
    );
    assert_eq!(by_name(&list, "postgresql", "15")["active"], false);
    assert_eq!(by_name(&list, "mariadb", "10.6")["default"], false);
    let shown = app
        .get_admin(&format!("/mgmt/datastore-versions/{}", s.v106))
        .await;
    assert_eq!(shown.status, 200);
    assert_eq!(&shown.json()["version"], by_name(&list, "mariadb", "10.6"));
    let r = app
        .get_admin("/mgmt/datastore-versions/8d8a3f2e-1b7c-4b8e-9b59-0c6f3f1a2b3c")
        .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Datastore version '8d8a3f2e-1b7c-4b8e-9b59-0c6f3f1a2b3c' cannot be found."
    );

    // Create in a new datastore (created on the way), as its default.
    let r = admin(
        &app,
        Method::POST,
        "/mgmt/datastore-versions",
        Some(json!({"version": {"name": "7.2", "datastore_name": "redis",
            "datastore_manager": "redis", "image": "a1b2c3d4-0000-4000-8000-000000000001",
            "packages": ["redis-server", "redis-tools"], "active": true, "default": true,
            "version": "7.2.4"}})),
    )
    .await;
    accepted(&r);
    let list = app.get_admin("/mgmt/datastore-versions").await.json();
    let redis = by_name(&list, "redis", "7.2").clone();
    assert_eq!(redis["version"], "7.2.4");
    assert_eq!(redis["image"], "a1b2c3d4-0000-4000-8000-000000000001");
    assert_eq!(redis["image_tags"], json!([""]));
    assert_eq!(redis["packages"], json!(["redis-server", "redis-tools"]));
    assert_eq!(redis["default"], true);
    assert_eq!(
        redis["repl_strategy"],
        "trove.guestagent.strategies.replication.experimental.redis_sync.RedisSyncReplication"
    );
    let ds = app.db().datastore_get("redis").await.unwrap();
    assert_eq!(ds.default_version_id.as_deref(), redis["id"].as_str());

    // A second version of an existing datastore, with tags only; then the same again: 400.
    let body = json!({"version": {"name": "11.4", "datastore_name": "mariadb",
        "datastore_manager": "mariadb", "image_tags": ["trove", "mariadb"], "active": false}});
    accepted(
        &admin(
            &app,
            Method::POST,
            "/mgmt/datastore-versions",
            Some(body.clone()),
        )
        .await,
    );
    let r = admin(&app, Method::POST, "/mgmt/datastore-versions", Some(body)).await;
    assert!(r.fault(400, "badRequest").contains("already exists"));
    let list = app.get_admin("/mgmt/datastore-versions").await.json();
    let new = by_name(&list, "mariadb", "11.4").clone();
    assert_eq!(new["version"], "11.4");
    assert_eq!(new["active"], false);
    assert_eq!(new["image"], Value::Null);
    // The existing default is untouched.
    let mariadb = app.db().datastore_get("mariadb").await.unwrap();
    assert_eq!(
        mariadb.default_version_id.as_deref(),
        Some(s.v1011.as_str())
    );

    // Update: flat body; default true moves the datastore default, false clears it.
    let path = format!("/mgmt/datastore-versions/{}", new["id"].as_str().unwrap());
    accepted(
        &admin(
            &app,
            Method::PATCH,
            &path,
            Some(json!({"active": true, "default": true, "image": "img-2",
                "packages": ["mariadb-server"], "registry_ext": "x.Manager"})),
        )
        .await,
    );
    let shown = app.get_admin(&path).await.json()["version"].clone();
    assert_eq!(shown["active"], true);
    assert_eq!(shown["default"], true);
    assert_eq!(shown["image"], "img-2");
    assert_eq!(shown["image_tags"], json!(["trove", "mariadb"]));
    assert_eq!(shown["packages"], json!(["mariadb-server"]));
    assert_eq!(shown["registry_ext"], "x.Manager");
    accepted(&admin(&app, Method::PATCH, &path, Some(json!({"default": false}))).await);
    let mariadb = app.db().datastore_get("mariadb").await.unwrap();
    assert_eq!(mariadb.default_version_id, None);
    // default: false on a version that is not the default leaves the default alone.
    accepted(
        &admin(
            &app,
            Method::PATCH,
            &format!("/mgmt/datastore-versions/{}", s.v106),
            Some(json!({"default": false})),
        )
        .await,
    );
    let ds = app.db().datastore_get("redis").await.unwrap();
    assert!(ds.default_version_id.is_some());
}

#[tokio::test]
async fn version_validation_errors() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let base = json!({"name": "9", "datastore_name": "mariadb", "datastore_manager": "mariadb",
        "image": "img", "active": true});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        json!({ "version": b })
    };
    for bad in [
        with("name", Value::Null),
        with("datastore_name", Value::Null),
        with("datastore_manager", Value::Null),
        with("active", Value::Null),
        with("active", json!("true")),
        with("colour", json!("red")),
        with("image_tags", json!(["a", "b", "c", "d", "e", "f"])),
        with("image_tags", json!(["a", "a"])),
        with("image_tags", json!([""])),
        with("image_tags", json!("trove")),
        with("packages", json!(["p", "p"])),
        json!({"versions": base.clone()}),
    ] {
        let r = admin(
            &app,
            Method::POST,
            "/mgmt/datastore-versions",
            Some(bad.clone()),
        )
        .await;
        let msg = r.fault(400, "badRequest");
        assert!(msg.starts_with("Validation error"), "{bad}: {msg}");
    }
    let r = admin(
        &app,
        Method::POST,
        "/mgmt/datastore-versions",
        Some(with("image", Value::Null)),
    )
    .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Image ID or image tags must be specified."
    );
    assert_eq!(
        app.db().datastore_version_list_all().await.unwrap().len(),
        3,
        "nothing created"
    );
    let path = format!("/mgmt/datastore-versions/{}", s.v1011);
    for bad in [
        json!({"datastore_name": "x"}),
        json!({"active": 1}),
        json!([1]),
    ] {
        let r = admin(&app, Method::PATCH, &path, Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let r = admin(
        &app,
        Method::DELETE,
        "/mgmt/datastore-versions/8d8a3f2e-1b7c-4b8e-9b59-0c6f3f1a2b3c",
        None,
    )
    .await;
    r.fault(400, "badRequest");
    let v = app.db().datastore_version_get(&s.v1011).await.unwrap();
    assert_eq!(v.name, "10.11");
}

#[tokio::test]
async fn parameters_crud_and_validation() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let base = format!("/mgmt/datastores/versions/{}/parameters", s.v1011);
    let list = app.get_admin(&base).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    let items = list["configuration-parameters"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let mc = items
        .iter()
        .find(|p| p["name"] == "max_connections")
        .unwrap();
    assert_eq!(
        mc,
        &json!({"name": "max_connections", "datastore_version_id": s.v1011,
            "restart_required": false, "type": "integer", "min_size": "1", "max_size": "100000"})
    );
    let cs = items
        .iter()
        .find(|p| p["name"] == "character_set_server")
        .unwrap();
    assert!(cs.get("max_size").is_none() && cs.get("min_size").is_none());

    // Create.
    let body = json!({"configuration-parameter": {"name": "innodb_buffer_pool_size",
        "data_type": "integer", "restart_required": 1, "min_size": "1048576",
        "max_size": "18446744073709551615"}});
    let r = admin(&app, Method::POST, &base, Some(body.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"name": "innodb_buffer_pool_size", "datastore_version_id": s.v1011,
            "restart_required": true, "type": "integer", "min_size": "1048576",
            "max_size": "18446744073709551615"})
    );
    let r = admin(&app, Method::POST, &base, Some(body)).await;
    assert!(r.fault(400, "badRequest").contains("already exists"));
    // Public view shows it with numbers.
    let public = app
        .get(&format!(
            "/datastores/versions/{}/parameters/innodb_buffer_pool_size",
            s.v1011
        ))
        .await;
    assert_eq!(public.json()["min"], 1048576);

    // Show, update, delete.
    let one = format!("{base}/innodb_buffer_pool_size");
    let r = app.get_admin(&one).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["restart_required"], true);
    let r = admin(
        &app,
        Method::PUT,
        &one,
        Some(
            json!({"configuration-parameter": {"name": "innodb_buffer_pool_size",
            "data_type": "integer", "restart_required": 0, "min_size": "0", "max_size": "42"}}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["max_size"], "42");
    assert_eq!(r.json()["restart_required"], false);
    let r = admin(&app, Method::DELETE, &one, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    app.get_admin(&one).await.fault(404, "itemNotFound");
    let r = admin(&app, Method::DELETE, &one, None).await;
    r.fault(400, "badRequest");
    let r = admin(
        &app,
        Method::PUT,
        &one,
        Some(
            json!({"configuration-parameter": {"name": "innodb_buffer_pool_size",
            "data_type": "string", "restart_required": 0}}),
        ),
    )
    .await;
    r.fault(404, "itemNotFound");

    // Validation.
    for bad in [
        json!({"configuration-parameter": {"name": "x", "data_type": "integer", "restart_required": 0}}),
        json!({"configuration-parameter": {"name": "x", "data_type": "integer", "restart_required": 0, "min_size": "10", "max_size": "9"}}),
        json!({"configuration-parameter": {"name": "x", "data_type": "integer", "restart_required": 0, "min_size": 1, "max_size": "9"}}),
        json!({"configuration-parameter": {"name": "x", "data_type": "boolean", "restart_required": 0}}),
        json!({"configuration-parameter": {"name": "x", "data_type": "string", "restart_required": true}}),
        json!({"configuration-parameter": {"name": "x", "data_type": "string"}}),
        json!({"configuration-parameter": {"name": "x".repeat(129), "data_type": "string", "restart_required": 0}}),
        json!({"configuration-parameter": {"name": "x", "data_type": "string", "restart_required": 0, "extra": 1}}),
        json!({"parameter": {}}),
    ] {
        let r = admin(&app, Method::POST, &base, Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    // Unknown version: 400.
    let r = app
        .get_admin("/mgmt/datastores/versions/8d8a3f2e-1b7c-4b8e-9b59-0c6f3f1a2b3c/parameters")
        .await;
    r.fault(400, "badRequest");
    assert_eq!(
        app.db().config_params_list(&s.v1011).await.unwrap().len(),
        3
    );
}

async fn create_instance(app: &TestApp, name: &str) -> String {
    let body = json!({"instance": {
        "name": name, "flavorRef": 2, "volume": {"size": 1},
        "datastore": {"type": "mariadb", "version": "10.11"}
    }});
    let r = send(app.v1(Method::POST, "/instances").json(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["instance"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn delete_version_refused_while_used_then_removed_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        let s = app.seed().await;
        let path = format!("/mgmt/datastore-versions/{}", s.v1011);
        let inst = create_instance(&app, "user-of-10-11").await;

        // A live instance holds the version: 400, and nothing changed.
        let r = admin(&app, Method::DELETE, &path, None).await;
        let msg = r.fault(400, "badRequest");
        assert!(msg.contains("in use by 1 instance(s)"), "{backend}: {msg}");
        assert!(msg.contains(&s.v1011), "{backend}: {msg}");
        let v = app.db().datastore_version_get(&s.v1011).await.unwrap();
        assert_eq!(v.name, "10.11");
        assert_eq!(
            app.db().config_params_list(&s.v1011).await.unwrap().len(),
            3
        );
        let ds = app.db().datastore_get("mariadb").await.unwrap();
        assert_eq!(ds.default_version_id.as_deref(), Some(s.v1011.as_str()));

        // Once the instance is deleted the version goes, with its parameters and the
        // datastore's default; the deleted instance's row stays.
        app.db().instance_soft_delete(&inst).await.unwrap();
        accepted(&admin(&app, Method::DELETE, &path, None).await);
        let r = admin(&app, Method::GET, &path, None).await;
        r.fault(400, "badRequest");
        assert!(
            app.db()
                .config_params_list(&s.v1011)
                .await
                .unwrap()
                .is_empty(),
            "{backend}: parameters left"
        );
        let ds = app.db().datastore_get("mariadb").await.unwrap();
        assert_eq!(ds.default_version_id, None, "{backend}");
        let list = admin(&app, Method::GET, "/mgmt/datastore-versions", None)
            .await
            .json();
        assert_eq!(
            list["versions"].as_array().unwrap().len(),
            2,
            "{backend}: {list}"
        );
        by_name(&list, "mariadb", "10.6");

        // Deleting it again: unknown version, 400.
        let r = admin(&app, Method::DELETE, &path, None).await;
        assert!(r.fault(400, "badRequest").contains("cannot be found"));

        // A live backup holds a version too; a deleted one does not.
        let v106 = format!("/mgmt/datastore-versions/{}", s.v106);
        let backup = app
            .db()
            .backup_create(&trove_db::Backup {
                id: "b-of-10-6".into(),
                name: "nightly".into(),
                state: "COMPLETED".into(),
                tenant_id: Some(common::PROJECT.into()),
                datastore_version_id: Some(s.v106.clone()),
                ..trove_db::Backup::default()
            })
            .await
            .unwrap();
        let r = admin(&app, Method::DELETE, &v106, None).await;
        let msg = r.fault(400, "badRequest");
        assert!(msg.contains("in use by 1 backup(s)"), "{backend}: {msg}");
        assert_eq!(
            app.db().datastore_version_list_all().await.unwrap().len(),
            2,
            "{backend}"
        );
        app.db().backup_delete(&backup.id).await.unwrap();
        accepted(&admin(&app, Method::DELETE, &v106, None).await);

        // The other versions are not touched, and one in no use goes at once.
        accepted(
            &admin(
                &app,
                Method::DELETE,
                &format!("/mgmt/datastore-versions/{}", s.pg15),
                None,
            )
            .await,
        );
        assert!(
            app.db()
                .datastore_version_list_all()
                .await
                .unwrap()
                .is_empty(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn rename_version_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        let s = app.seed().await;
        let path = format!("/mgmt/datastore-versions/{}", s.v106);

        // Rename together with another field: the number stays.
        accepted(
            &admin(
                &app,
                Method::PATCH,
                &path,
                Some(json!({"name": "10.6-lts", "packages": ["pkg"]})),
            )
            .await,
        );
        let v = admin(&app, Method::GET, &path, None).await.json()["version"].clone();
        assert_eq!(v["name"], "10.6-lts", "{backend}");
        assert_eq!(v["version"], "10.6.16", "{backend}");
        assert_eq!(v["packages"], json!(["pkg"]), "{backend}");
        assert_eq!(v["id"], s.v106.as_str());

        // Another version with that name and number: 400 and nothing changed, not even
        // the other fields of the request.
        accepted(
            &admin(
                &app,
                Method::POST,
                "/mgmt/datastore-versions",
                Some(json!({"version": {"name": "dup", "version": "10.6.16",
                    "datastore_name": "mariadb", "datastore_manager": "mariadb",
                    "image": "img", "active": true}})),
            )
            .await,
        );
        let r = admin(
            &app,
            Method::PATCH,
            &path,
            Some(json!({"name": "dup", "active": true})),
        )
        .await;
        assert_eq!(
            r.fault(400, "badRequest"),
            "A datastore version with the name 'dup' and version '10.6.16' already exists.",
            "{backend}"
        );
        let v = app.db().datastore_version_get(&s.v106).await.unwrap();
        assert_eq!(v.name, "10.6-lts", "{backend}");
        assert!(!v.active, "{backend}");

        // The same name in another datastore is no clash.
        accepted(
            &admin(
                &app,
                Method::PATCH,
                &format!("/mgmt/datastore-versions/{}", s.pg15),
                Some(json!({"name": "10.6-lts"})),
            )
            .await,
        );
        // Renaming to its own name changes nothing.
        accepted(
            &admin(
                &app,
                Method::PATCH,
                &path,
                Some(json!({"name": "10.6-lts"})),
            )
            .await,
        );
        assert_eq!(
            app.db().datastore_version_get(&s.pg15).await.unwrap().name,
            "10.6-lts"
        );
        // An instance created by the new name finds the renamed version.
        accepted(&admin(&app, Method::PATCH, &path, Some(json!({"active": true}))).await);
        let body = json!({"instance": {
            "name": "on-renamed", "flavorRef": 2, "volume": {"size": 1},
            "datastore": {"type": "mariadb", "version": "10.6-lts"}
        }});
        let r = send(app.v1(Method::POST, "/instances").json(&body)).await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        assert_eq!(
            r.json()["instance"]["datastore"]["version"],
            "10.6-lts",
            "{backend}"
        );
    }
}

/// An image service that knows a fixed set of images: ids, and the tags of each.
#[derive(Debug)]
struct KnownImages(Vec<(&'static str, Vec<&'static str>)>);

#[async_trait::async_trait]
impl trove_api::handlers::mgmt_datastores::ImageCheck for KnownImages {
    async fn check(&self, image: Option<&str>, tags: &[String]) -> trove_api::error::ApiResult<()> {
        let found = match image {
            Some(id) => self.0.iter().any(|(i, _)| *i == id),
            None => self
                .0
                .iter()
                .any(|(_, t)| tags.iter().all(|w| t.contains(&w.as_str()))),
        };
        if found {
            Ok(())
        } else {
            Err(trove_api::error::ApiError::bad_request(format!(
                "no image {image:?} with tags {tags:?}"
            )))
        }
    }
}

#[tokio::test]
async fn images_are_checked_where_there_is_an_image_service() {
    let app = TestApp::start_with(common::Options {
        images: Some(std::sync::Arc::new(KnownImages(vec![
            ("img-1", vec!["trove-11"]),
            ("img-2", vec!["trove"]),
        ]))),
        ..common::Options::default()
    })
    .await;
    let s = app.seed().await;
    let create = |image: Value, tags: Value| {
        json!({"version": {"name": "11.4", "datastore_name": "mariadb",
            "datastore_manager": "mariadb", "image": image, "image_tags": tags,
            "active": true}})
    };
    for bad in [
        create(json!("img-9"), json!([])),
        create(json!("img-9"), json!(["trove"])),
        create(Value::Null, json!(["trove", "postgresql"])),
    ] {
        let r = admin(
            &app,
            Method::POST,
            "/mgmt/datastore-versions",
            Some(bad.clone()),
        )
        .await;
        assert!(r.fault(400, "badRequest").contains("no image"), "{bad}");
    }
    assert_eq!(
        app.db().datastore_version_list_all().await.unwrap().len(),
        3,
        "nothing created"
    );
    for (n, good) in [
        create(json!("img-2"), json!(["no-such-tag"])),
        create(Value::Null, json!(["trove-11"])),
    ]
    .into_iter()
    .enumerate()
    {
        let mut good = good;
        good["version"]["version"] = json!(format!("11.4.{n}"));
        accepted(&admin(&app, Method::POST, "/mgmt/datastore-versions", Some(good)).await);
    }

    // An update is checked when it changes the image or its tags, and refused whole.
    let path = format!("/mgmt/datastore-versions/{}", s.v106);
    let r = admin(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"image": "img-9", "name": "renamed", "active": true})),
    )
    .await;
    r.fault(400, "badRequest");
    let v = app.db().datastore_version_get(&s.v106).await.unwrap();
    assert_eq!((v.name.as_str(), v.active), ("10.6", false));
    let r = admin(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"image_tags": ["x"]})),
    )
    .await;
    r.fault(400, "badRequest");
    accepted(&admin(&app, Method::PATCH, &path, Some(json!({"image": "img-1"}))).await);
    // The seeded versions carry a tag no known image has (`mariadb`): changes that
    // leave the image alone are not checked.
    accepted(
        &admin(
            &app,
            Method::PATCH,
            &format!("/mgmt/datastore-versions/{}", s.pg15),
            Some(json!({"active": true})),
        )
        .await,
    );
    assert!(
        app.db()
            .datastore_version_get(&s.pg15)
            .await
            .unwrap()
            .active
    );
}
