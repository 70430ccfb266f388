//! Datastores, versions, bound flavors/volume types and configuration parameters
//! (api.md §10.8, §11), on SQLite and, for the repository paths, MariaDB and PostgreSQL.

mod common;

use common::{redact, TestApp};

#[tokio::test]
async fn member_list_shows_active_versions_only() {
    let app = TestApp::start().await;
    app.seed().await;
    let r = app.get("/datastores").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    // postgresql has no active version: hidden from members.
    assert_eq!(v["datastores"].as_array().unwrap().len(), 1);
    insta::assert_json_snapshot!("datastores_member", redact(&v));
}

#[tokio::test]
async fn admin_list_shows_everything_with_admin_keys() {
    let app = TestApp::start().await;
    app.seed().await;
    let r = app.get_admin("/datastores").await;
    assert_eq!(r.status, 200);
    insta::assert_json_snapshot!("datastores_admin", redact(&r.json()));
}

#[tokio::test]
async fn show_by_name_or_id() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let by_name = app.get("/datastores/mariadb").await;
    assert_eq!(by_name.status, 200);
    let by_id = app.get(&format!("/datastores/{}", s.mariadb)).await;
    assert_eq!(by_id.json(), by_name.json());
    insta::assert_json_snapshot!("datastore_show", redact(&by_name.json()));
    // Show lists active versions only, also for admins; no default to advertise here.
    let pg = app.get_admin("/datastores/postgresql").await.json();
    assert_eq!(pg["datastore"]["versions"], serde_json::json!([]));
    assert!(pg["datastore"].get("default_version").is_none());
    let missing = app.get("/datastores/nosuch").await;
    assert_eq!(
        missing.fault(404, "itemNotFound"),
        "Datastore 'nosuch' cannot be found."
    );
}

#[tokio::test]
async fn version_lists_and_shows() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let member = app.get("/datastores/mariadb/versions").await.json();
    assert_eq!(member["versions"].as_array().unwrap().len(), 1);
    insta::assert_json_snapshot!("versions_member", redact(&member));
    let admin = app
        .get_admin(&format!("/datastores/{}/versions", s.mariadb))
        .await
        .json();
    assert_eq!(admin["versions"].as_array().unwrap().len(), 2);
    let v106 = admin["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "10.6")
        .unwrap();
    assert_eq!(v106["active"], false);
    assert_eq!(v106["image_tags"], serde_json::json!(["trove", "mariadb"]));

    // By name (inactive versions are shown), by id within the datastore, by UUID alone.
    let by_name = app.get("/datastores/mariadb/versions/10.6").await;
    assert_eq!(by_name.status, 200);
    assert_eq!(by_name.json()["version"]["id"], s.v106.as_str());
    let by_id = app
        .get(&format!("/datastores/mariadb/versions/{}", s.v1011))
        .await;
    insta::assert_json_snapshot!("version_show", redact(&by_id.json()));
    let by_uuid = app.get(&format!("/datastores/versions/{}", s.v1011)).await;
    assert_eq!(by_uuid.json(), by_id.json());

    // Errors: unknown name 400, unknown UUID in a datastore 404, UUID of another
    // datastore's version 404, unknown UUID on the by-uuid route 400, unknown datastore 404.
    let r = app.get("/datastores/mariadb/versions/9.9").await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Datastore version '9.9' cannot be found."
    );
    let unknown = "0f3c1c3e-5d5a-4c4b-9a0e-2b6f8d1e7a90";
    let r = app
        .get(&format!("/datastores/mariadb/versions/{unknown}"))
        .await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Resource {unknown} cannot be found.")
    );
    let r = app
        .get(&format!("/datastores/mariadb/versions/{}", s.pg15))
        .await;
    r.fault(404, "itemNotFound");
    let r = app.get(&format!("/datastores/versions/{unknown}")).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        format!("Datastore version '{unknown}' cannot be found.")
    );
    let r = app.get("/datastores/nosuch/versions").await;
    r.fault(404, "itemNotFound");
}

#[tokio::test]
async fn ambiguous_version_names_are_400() {
    let app = TestApp::start().await;
    app.seed().await;
    app.db()
        .datastore_version_upsert(&trove_db::DatastoreVersionSpec {
            datastore: "mariadb".into(),
            name: "10.11".into(),
            manager: "mariadb".into(),
            image_id: String::new(),
            packages: String::new(),
            active: true,
            image_tags: None,
            version: Some("10.11.9".into()),
            registry_ext: None,
            repl_strategy: None,
        })
        .await
        .unwrap();
    let r = app.get("/datastores/mariadb/versions/10.11").await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Multiple datastore versions found for '10.11', use an UUID or specify both the name and version number to be more specific."
    );
}

#[tokio::test]
async fn flavors_and_volume_types_of_a_version() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let all = app
        .get(&format!("/datastores/mariadb/versions/{}/flavors", s.v1011))
        .await
        .json();
    assert_eq!(all["flavors"].as_array().unwrap().len(), 3);
    app.db()
        .datastore_version_metadata_add(&s.v1011, trove_db::METADATA_FLAVOR, &["d2".into()])
        .await
        .unwrap();
    let bound = app
        .get(&format!(
            "/datastores/anything/versions/{}/flavors",
            s.v1011
        ))
        .await
        .json();
    insta::assert_json_snapshot!("version_flavors_bound", redact(&bound));
    let vt = app
        .get(&format!(
            "/datastores/mariadb/versions/{}/volume-types",
            s.v1011
        ))
        .await;
    assert_eq!(vt.status, 200);
    assert_eq!(vt.json(), serde_json::json!({"volume_types": []}));
    let r = app.get("/datastores/mariadb/versions/nosuch/flavors").await;
    r.fault(400, "badRequest");
}

#[tokio::test]
async fn configuration_parameters() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let list = app
        .get("/datastores/mariadb/versions/10.11/parameters")
        .await;
    assert_eq!(list.status, 200);
    insta::assert_json_snapshot!("parameters_list", redact(&list.json()));
    let by_version = app
        .get(&format!("/datastores/versions/{}/parameters", s.v1011))
        .await;
    assert_eq!(by_version.json(), list.json());
    let one = app
        .get("/datastores/mariadb/versions/10.11/parameters/max_connections")
        .await;
    insta::assert_json_snapshot!(redact(&one.json()), @r#"
    {
      "datastore_version_id": "[uuid]",
      "max": 100000,
      "min": 1,
      "name": "max_connections",
      "restart_required": false,
      "type": "integer"
    }
    "#);
    let one_by_version = app
        .get(&format!(
            "/datastores/versions/{}/parameters/max_connections",
            s.v1011
        ))
        .await;
    assert_eq!(one_by_version.json(), one.json());
    // Inactive versions are accepted here.
    let inactive = app
        .get("/datastores/mariadb/versions/10.6/parameters")
        .await;
    assert_eq!(
        inactive.json(),
        serde_json::json!({"configuration-parameters": []})
    );
    let r = app
        .get("/datastores/mariadb/versions/10.11/parameters/nosuch")
        .await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        "Resource nosuch cannot be found."
    );
    let r = app.get("/datastores/versions/nosuch/parameters").await;
    r.fault(400, "badRequest");
}

/// The repository-touching paths on every backend of `TROVE_TEST_BACKENDS`.
#[tokio::test]
async fn datastore_routes_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        let s = app.seed().await;
        let list = app.get("/datastores").await;
        assert_eq!(list.status, 200, "{backend}");
        insta::assert_json_snapshot!("datastores_member", redact(&list.json()));
        let admin = app.get_admin("/datastores").await;
        insta::assert_json_snapshot!("datastores_admin", redact(&admin.json()));
        let v = app.get("/datastores/mariadb/versions/10.6").await;
        assert_eq!(v.json()["version"]["id"], s.v106.as_str(), "{backend}");
        let params = app
            .get("/datastores/mariadb/versions/10.11/parameters")
            .await;
        insta::assert_json_snapshot!("parameters_list", redact(&params.json()));
        let flavors = app.get("/flavors").await;
        insta::assert_json_snapshot!("flavors_list", redact(&flavors.json()));
        let missing = app.get("/flavors/nosuch").await;
        missing.fault(404, "itemNotFound");
    }
}
