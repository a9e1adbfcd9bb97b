//! Users, roles, permissions and favorite tasks against the real binary and a real throwaway
//! PostgreSQL cluster: every `/admin/*` route (and its 403 for non-admins), the user created on
//! first sight of a token, `/user` and `/permissions` answered from the store, 403 on command
//! routes without the permission (directly and through a proxy) and success with it, favorites
//! isolated per user, socket.io rooms and REST reads restricted by a rule (`--room-permission`;
//! directly and through a proxy). With `--no-db` the same routes give the same answers from
//! memory (the admin and favorite tests run on both backends), kept for the life of the process,
//! and nothing is enforced.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Cluster, Proc, bin, cluster, python, repo, trace_gen};

const SECRET: &str = "users-test-secret";

fn token(user: &str) -> String {
    common::token(SECRET, user)
}

/// One request as `user` (none: no token): (status, JSON body or Null).
fn http(
    port: u16,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    common::call_as(SECRET, port, method, path, user, body)
}

/// A server (and the throwaway cluster it stores into, when any).
struct Server {
    port: u16,
    _proc: Proc,
    _pg: Option<Cluster>,
}

fn serve(db: bool, extra: &[&str]) -> Server {
    let pg = db.then(cluster);
    let server = common::Server::serve()
        .args(["--jwt-secret", SECRET])
        .args(extra);
    let server = match &pg {
        Some(pg) => server.args(["--database-url", pg.url()]),
        None => server.arg("--no-db"),
    };
    let (proc, port) = server.start();
    Server {
        port,
        _proc: proc,
        _pg: pg,
    }
}

/// A proxy of `upstream` and its port.
fn proxy(upstream: u16) -> (Proc, u16) {
    proxy_with(upstream, &[])
}

fn proxy_with(upstream: u16, extra: &[&str]) -> (Proc, u16) {
    common::Server::proxy()
        .args(["--jwt-secret", SECRET, "--upstream"])
        .arg(format!("http://127.0.0.1:{upstream}"))
        .arg("--upstream-token")
        .arg(token("proxy"))
        .args(extra)
        .start()
}

impl Server {
    fn call(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> (u16, Value) {
        http(self.port, method, path, Some(user), body)
    }
}

const OK: (u16, Value) = (200, Value::Null);

fn forbidden_admin(user: &str) -> (u16, Value) {
    (
        403,
        json!({"detail": format!("admin only: user {user} is not an admin")}),
    )
}

fn forbidden(user: &str, action: &str) -> (u16, Value) {
    (
        403,
        json!({"detail": format!(
            "user {user} may not do this: it needs the permission {{authz_grp: \"\", action: \"{action}\"}} through one of its roles"
        )}),
    )
}

#[test]
fn admin_routes_manage_users_roles_and_permissions() {
    admin_routes(true);
}

#[test]
fn admin_routes_answer_the_same_from_memory_without_a_store() {
    admin_routes(false);
}

/// Every `/admin/*` route, `/user` and `/permissions`, with a store (`db`) or in memory.
fn admin_routes(db: bool) {
    let s = serve(db, &["--admin-user", "root"]);
    // The configured admin, and a user created on first sight of their token.
    assert_eq!(
        s.call("GET", "/user", "root", None),
        (
            200,
            json!({"username": "root", "is_admin": true, "roles": []})
        )
    );
    assert_eq!(
        s.call("GET", "/admin/users", "root", None),
        (200, json!(["root"]))
    );
    assert_eq!(
        s.call("GET", "/user", "alice", None),
        (
            200,
            json!({"username": "alice", "is_admin": false, "roles": []})
        )
    );
    assert_eq!(
        s.call("GET", "/permissions", "alice", None),
        (200, json!([]))
    );
    assert_eq!(
        s.call("GET", "/admin/users", "root", None),
        (200, json!(["alice", "root"]))
    );
    // Every admin route refuses a non-admin.
    let denied: &[(&str, &str, Option<Value>)] = &[
        ("GET", "/admin/users", None),
        ("POST", "/admin/users", Some(json!({"username": "x"}))),
        ("GET", "/admin/users/root", None),
        ("DELETE", "/admin/users/root", None),
        (
            "POST",
            "/admin/users/alice/roles",
            Some(json!({"name": "r"})),
        ),
        ("PUT", "/admin/users/alice/roles", Some(json!([]))),
        ("DELETE", "/admin/users/alice/roles/r", None),
        (
            "POST",
            "/admin/users/alice/make_admin",
            Some(json!({"admin": true})),
        ),
        ("GET", "/admin/roles", None),
        ("POST", "/admin/roles", Some(json!({"name": "r"}))),
        ("DELETE", "/admin/roles/r", None),
        ("GET", "/admin/roles/r/permissions", None),
        (
            "POST",
            "/admin/roles/r/permissions",
            Some(json!({"authz_grp": "", "action": "task_submit"})),
        ),
        (
            "POST",
            "/admin/roles/r/permissions/remove",
            Some(json!({"authz_grp": "", "action": "task_submit"})),
        ),
    ];
    for (method, path, body) in denied {
        assert_eq!(
            s.call(method, path, "alice", body.clone()),
            forbidden_admin("alice"),
            "{method} {path}"
        );
    }
    // Users.
    assert_eq!(
        s.call(
            "POST",
            "/admin/users",
            "root",
            Some(json!({"username": "bob"}))
        ),
        OK
    );
    assert_eq!(
        s.call(
            "POST",
            "/admin/users",
            "root",
            Some(json!({"username": "bob"}))
        )
        .0,
        422
    );
    assert_eq!(
        s.call(
            "POST",
            "/admin/users",
            "root",
            Some(json!({"username": "carol", "is_admin": true}))
        ),
        OK
    );
    assert_eq!(
        s.call("GET", "/admin/users?is_admin=true", "root", None),
        (200, json!(["carol", "root"]))
    );
    assert_eq!(
        s.call("GET", "/admin/users?username=b", "root", None),
        (200, json!(["bob"]))
    );
    assert_eq!(
        s.call("GET", "/admin/users?limit=2&offset=1", "root", None),
        (200, json!(["bob", "carol"]))
    );
    assert_eq!(
        s.call("GET", "/admin/users/nobody", "root", None),
        (404, json!({"detail": "user nobody does not exist"}))
    );
    // Roles and permissions.
    for role in ["operator", "viewer"] {
        assert_eq!(
            s.call("POST", "/admin/roles", "root", Some(json!({"name": role}))),
            OK
        );
    }
    assert_eq!(
        s.call(
            "POST",
            "/admin/roles",
            "root",
            Some(json!({"name": "viewer"}))
        )
        .0,
        422
    );
    assert_eq!(
        s.call("GET", "/admin/roles", "root", None),
        (200, json!(["operator", "viewer"]))
    );
    for action in ["task_submit", "task_cancel"] {
        assert_eq!(
            s.call(
                "POST",
                "/admin/roles/operator/permissions",
                "root",
                Some(json!({"authz_grp": "", "action": action}))
            ),
            OK
        );
    }
    assert_eq!(
        s.call(
            "POST",
            "/admin/roles/viewer/permissions",
            "root",
            Some(json!({"authz_grp": "west", "action": "task_read"}))
        ),
        OK
    );
    assert_eq!(
        s.call("GET", "/admin/roles/operator/permissions", "root", None),
        (
            200,
            json!([{"authz_grp": "", "action": "task_cancel"}, {"authz_grp": "", "action": "task_submit"}])
        )
    );
    assert_eq!(
        s.call(
            "POST",
            "/admin/roles/operator/permissions/remove",
            "root",
            Some(json!({"authz_grp": "", "action": "task_cancel"}))
        ),
        OK
    );
    assert_eq!(
        s.call("GET", "/admin/roles/operator/permissions", "root", None),
        (200, json!([{"authz_grp": "", "action": "task_submit"}]))
    );
    assert_eq!(
        s.call("GET", "/admin/roles/ghost/permissions", "root", None)
            .0,
        404
    );
    // Memberships.
    assert_eq!(
        s.call(
            "POST",
            "/admin/users/alice/roles",
            "root",
            Some(json!({"name": "viewer"}))
        ),
        OK
    );
    assert_eq!(
        s.call(
            "POST",
            "/admin/users/alice/roles",
            "root",
            Some(json!({"name": "ghost"}))
        ),
        (404, json!({"detail": "role ghost does not exist"}))
    );
    assert_eq!(
        s.call("GET", "/admin/users/alice", "root", None),
        (
            200,
            json!({"username": "alice", "is_admin": false, "roles": ["viewer"]})
        )
    );
    assert_eq!(
        s.call(
            "PUT",
            "/admin/users/alice/roles",
            "root",
            Some(json!([{"name": "operator"}, {"name": "viewer"}]))
        ),
        OK
    );
    assert_eq!(
        s.call(
            "PUT",
            "/admin/users/alice/roles",
            "root",
            Some(json!([{"name": "ghost"}]))
        ),
        (422, json!({"detail": "one or more roles does not exist"}))
    );
    assert_eq!(
        s.call("GET", "/user", "alice", None),
        (
            200,
            json!({"username": "alice", "is_admin": false, "roles": ["operator", "viewer"]})
        )
    );
    assert_eq!(
        s.call("GET", "/permissions", "alice", None),
        (
            200,
            json!([{"authz_grp": "", "action": "task_submit"}, {"authz_grp": "west", "action": "task_read"}])
        )
    );
    assert_eq!(
        s.call("DELETE", "/admin/users/alice/roles/viewer", "root", None),
        OK
    );
    assert_eq!(
        s.call("GET", "/admin/users/alice", "root", None).1["roles"],
        json!(["operator"])
    );
    // Deleting a role removes it from its members.
    assert_eq!(s.call("DELETE", "/admin/roles/operator", "root", None), OK);
    assert_eq!(
        s.call("DELETE", "/admin/roles/operator", "root", None).0,
        404
    );
    assert_eq!(
        s.call("GET", "/admin/users/alice", "root", None).1["roles"],
        json!([])
    );
    // make_admin, both ways: alice may then administer.
    assert_eq!(
        s.call(
            "POST",
            "/admin/users/alice/make_admin",
            "root",
            Some(json!({"admin": true}))
        ),
        OK
    );
    assert_eq!(
        s.call("GET", "/admin/roles", "alice", None),
        (200, json!(["viewer"]))
    );
    assert_eq!(
        s.call(
            "POST",
            "/admin/users/alice/make_admin",
            "root",
            Some(json!({"admin": false}))
        ),
        OK
    );
    assert_eq!(
        s.call("GET", "/admin/roles", "alice", None),
        forbidden_admin("alice")
    );
    // Deleting a user: gone from the list, re-created (without roles) on their next request.
    assert_eq!(s.call("DELETE", "/admin/users/bob", "root", None), OK);
    assert_eq!(s.call("DELETE", "/admin/users/bob", "root", None).0, 404);
    assert_eq!(
        s.call("GET", "/admin/users", "root", None),
        (200, json!(["alice", "carol", "root"]))
    );
    assert_eq!(
        s.call("GET", "/user", "bob", None).1["is_admin"],
        json!(false)
    );
    assert_eq!(
        s.call("GET", "/admin/users", "root", None),
        (200, json!(["alice", "bob", "carol", "root"]))
    );
    // No token: 401.
    assert_eq!(http(s.port, "GET", "/admin/users", None, None).0, 401);
}

fn dispatch_body() -> Value {
    json!({
        "type": "dispatch_task_request",
        "request": {"category": "patrol", "description": {"places": ["pantry"], "rounds": 1}},
    })
}

#[test]
fn command_routes_need_their_permission_directly_and_through_a_proxy() {
    let s = serve(true, &[]);
    // A representative set of command routes, each refused to a user without roles.
    let commands: &[(&str, Value, &str)] = &[
        ("/tasks/dispatch_task", dispatch_body(), "task_submit"),
        (
            "/tasks/cancel_task",
            json!({"type": "cancel_task_request", "task_id": "t1"}),
            "task_cancel",
        ),
        (
            "/tasks/kill_task",
            json!({"type": "kill_task_request", "task_id": "t1"}),
            "task_cancel",
        ),
        (
            "/tasks/interrupt_task",
            json!({"type": "interrupt_task_request", "task_id": "t1"}),
            "task_interrupt",
        ),
        ("/doors/d1/request", json!({"mode": 2}), "door_request"),
        (
            "/lifts/L1/request",
            json!({"request_type": 1, "door_mode": 2, "destination": "L3"}),
            "lift_request",
        ),
        (
            "/building_map/reset_fire_alarm_trigger",
            json!({}),
            "fire_alarm_reset",
        ),
        ("/fleets/f1/unlock_mutex_group", json!({}), "mutex_release"),
        ("/fleets/f1/decommission", json!({}), "robot_commission"),
    ];
    for (path, body, action) in commands {
        assert_eq!(
            s.call("POST", path, "dave", Some(body.clone())),
            forbidden("dave", action),
            "{path}"
        );
    }
    // The admin may: the door request is carried out.
    assert_eq!(
        s.call(
            "POST",
            "/doors/d1/request",
            "admin",
            Some(json!({"mode": 2}))
        ),
        OK
    );
    // Through a proxy the main process's 403 comes back unchanged.
    let (_proxy, pp) = proxy(s.port);
    assert_eq!(
        http(
            pp,
            "POST",
            "/tasks/dispatch_task",
            Some("dave"),
            Some(dispatch_body())
        ),
        forbidden("dave", "task_submit")
    );
    // Granted through a role: dave may dispatch (directly and through the proxy), not cancel.
    assert_eq!(
        s.call(
            "POST",
            "/admin/roles",
            "admin",
            Some(json!({"name": "dispatcher"}))
        ),
        OK
    );
    assert_eq!(
        s.call(
            "POST",
            "/admin/roles/dispatcher/permissions",
            "admin",
            Some(json!({"authz_grp": "", "action": "task_submit"}))
        ),
        OK
    );
    // A permission in another group does not count for the site-wide check.
    assert_eq!(
        s.call(
            "POST",
            "/admin/roles/dispatcher/permissions",
            "admin",
            Some(json!({"authz_grp": "west", "action": "door_request"}))
        ),
        OK
    );
    assert_eq!(
        s.call(
            "POST",
            "/admin/users/dave/roles",
            "admin",
            Some(json!({"name": "dispatcher"}))
        ),
        OK
    );
    let (status, answer) = s.call(
        "POST",
        "/tasks/dispatch_task",
        "dave",
        Some(dispatch_body()),
    );
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (status, answer) = http(
        pp,
        "POST",
        "/tasks/dispatch_task",
        Some("dave"),
        Some(dispatch_body()),
    );
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    assert_eq!(
        s.call(
            "POST",
            "/tasks/cancel_task",
            "dave",
            Some(json!({"type": "cancel_task_request", "task_id": "t1"}))
        ),
        forbidden("dave", "task_cancel")
    );
    assert_eq!(
        s.call(
            "POST",
            "/doors/d1/request",
            "dave",
            Some(json!({"mode": 2}))
        ),
        forbidden("dave", "door_request")
    );
    // No token: 401, not 403.
    assert_eq!(
        http(
            s.port,
            "POST",
            "/doors/d1/request",
            None,
            Some(json!({"mode": 2}))
        )
        .0,
        401
    );
}

#[test]
fn favorite_tasks_are_stored_per_user() {
    favorite_tasks(true);
}

#[test]
fn favorite_tasks_are_kept_per_user_in_memory_without_a_store() {
    favorite_tasks(false);
}

/// `/favorite_tasks`, with a store (`db`) or in memory.
fn favorite_tasks(db: bool) {
    let s = serve(db, &[]);
    let fav = json!({
        "id": "",
        "name": "patrol pantry",
        "unix_millis_earliest_start_time": 0,
        "priority": null,
        "category": "patrol",
        "description": {"places": ["pantry"]},
        "user": "someone else",
        "task_definition_id": "patrol",
    });
    let (status, stored) = s.call("POST", "/favorite_tasks", "erin", Some(fav.clone()));
    assert_eq!(status, 200, "{stored}");
    let id = stored["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 36);
    let mut want = fav.clone();
    want["id"] = json!(id);
    want["user"] = json!("erin");
    assert_eq!(stored, want);
    assert_eq!(
        s.call("GET", "/favorite_tasks", "erin", None),
        (200, json!([want]))
    );
    // Another user sees none of erin's, cannot replace nor delete them.
    assert_eq!(
        s.call("GET", "/favorite_tasks", "frank", None),
        (200, json!([]))
    );
    let mut theirs = fav.clone();
    theirs["id"] = json!(id);
    assert_eq!(
        s.call("POST", "/favorite_tasks", "frank", Some(theirs)).0,
        422
    );
    assert_eq!(
        s.call("DELETE", &format!("/favorite_tasks/{id}"), "frank", None),
        (
            404,
            json!({"detail": format!("Favorite task with id {id} does not exists")})
        )
    );
    // Update in place (same id), then a second one.
    let mut renamed = want.clone();
    renamed["name"] = json!("patrol pantry twice");
    assert_eq!(
        s.call("POST", "/favorite_tasks", "erin", Some(renamed.clone())),
        (200, renamed.clone())
    );
    let mut second = fav.clone();
    second["id"] = json!("mine-2");
    second["name"] = json!("deliver");
    let (status, second) = s.call("POST", "/favorite_tasks", "erin", Some(second));
    assert_eq!(status, 200);
    assert_eq!(
        s.call("GET", "/favorite_tasks", "erin", None),
        (200, json!([renamed, second]))
    );
    // Invalid bodies.
    assert_eq!(
        s.call("POST", "/favorite_tasks", "erin", Some(json!({"id": ""})))
            .0,
        422
    );
    assert_eq!(
        s.call("POST", "/favorite_tasks", "erin", Some(json!([1])))
            .0,
        422
    );
    // Delete.
    assert_eq!(
        s.call("DELETE", &format!("/favorite_tasks/{id}"), "erin", None),
        OK
    );
    assert_eq!(
        s.call("DELETE", &format!("/favorite_tasks/{id}"), "erin", None)
            .0,
        404
    );
    assert_eq!(
        s.call("GET", "/favorite_tasks", "erin", None),
        (200, json!([second]))
    );
}

#[test]
fn without_a_store_users_live_in_memory_and_nothing_is_enforced() {
    let s = serve(false, &[]);
    assert_eq!(
        s.call("GET", "/user", "gina", None),
        (
            200,
            json!({"username": "gina", "is_admin": false, "roles": []})
        )
    );
    assert_eq!(
        s.call("GET", "/permissions", "gina", None),
        (200, json!([]))
    );
    // Nothing is enforced: a user without roles sends commands.
    assert_eq!(
        s.call(
            "POST",
            "/doors/d1/request",
            "gina",
            Some(json!({"mode": 2}))
        ),
        OK
    );
    // The admin routes are for admins (`--admin-user`, default `admin`).
    assert_eq!(
        s.call("GET", "/admin/users", "gina", None),
        forbidden_admin("gina")
    );
    assert_eq!(
        s.call("GET", "/admin/users", "admin", None),
        (200, json!(["admin", "gina"]))
    );
    grant(&s, "operator", &[("", "task_submit")], &["gina"]);
    assert_eq!(
        s.call("GET", "/user", "gina", None),
        (
            200,
            json!({"username": "gina", "is_admin": false, "roles": ["operator"]})
        )
    );
    assert_eq!(
        s.call("GET", "/permissions", "gina", None),
        (200, json!([{"authz_grp": "", "action": "task_submit"}]))
    );
    assert_eq!(
        s.call("GET", "/favorite_tasks", "gina", None),
        (200, json!([]))
    );
    // For the life of the process: a new one knows only its admin.
    drop(s);
    let s = serve(false, &[]);
    assert_eq!(
        s.call("GET", "/admin/users", "admin", None),
        (200, json!(["admin"]))
    );
    assert_eq!(
        s.call("GET", "/admin/roles", "admin", None),
        (200, json!([]))
    );
}

fn grant(s: &Server, role: &str, perms: &[(&str, &str)], users: &[&str]) {
    assert_eq!(
        s.call("POST", "/admin/roles", "admin", Some(json!({"name": role}))),
        OK
    );
    for (grp, action) in perms {
        assert_eq!(
            s.call(
                "POST",
                &format!("/admin/roles/{role}/permissions"),
                "admin",
                Some(json!({"authz_grp": grp, "action": action}))
            ),
            OK
        );
    }
    for u in users {
        // Created on first sight.
        assert_eq!(s.call("GET", "/user", u, None).0, 200);
        assert_eq!(
            s.call(
                "POST",
                &format!("/admin/users/{u}/roles"),
                "admin",
                Some(json!({"name": role}))
            ),
            OK
        );
    }
}

fn forbidden_in(user: &str, group: &str, action: &str) -> (u16, Value) {
    (
        403,
        json!({"detail": format!(
            "user {user} may not do this: it needs the permission {{authz_grp: \"{group}\", action: \"{action}\"}} through one of its roles"
        )}),
    )
}

fn dispatch_in(labels: &[&str]) -> Value {
    let mut b = dispatch_body();
    b["request"]["labels"] = json!(labels);
    b
}

/// Dispatches and waits for the task's state (fed from RMF's answer) to be shown; its id.
fn dispatched(s: &Server, user: &str, body: Value) -> String {
    let (status, answer) = s.call("POST", "/tasks/dispatch_task", user, Some(body));
    assert_eq!(status, 200, "{answer}");
    let id = answer["state"]["booking"]["id"]
        .as_str()
        .expect("task id")
        .to_string();
    let start = Instant::now();
    while s.call("GET", &format!("/tasks/{id}/state"), user, None).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "task {id} not shown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    id
}

#[test]
fn task_permissions_are_scoped_to_task_groups() {
    let s = serve(true, &[]);
    // wes may submit and cancel tasks of group west; sid may submit site-wide (every group).
    grant(
        &s,
        "west-ops",
        &[("west", "task_submit"), ("west", "task_cancel")],
        &["wes"],
    );
    grant(&s, "site-ops", &[("", "task_submit")], &["sid"]);
    // A task's group is its booking label authz_grp=<group>.
    let west = dispatched(&s, "wes", dispatch_in(&["authz_grp=west", "zone=a"]));
    assert_eq!(
        s.call(
            "POST",
            "/tasks/dispatch_task",
            "wes",
            Some(dispatch_in(&["authz_grp=east"]))
        ),
        forbidden_in("wes", "east", "task_submit")
    );
    assert_eq!(
        s.call("POST", "/tasks/dispatch_task", "wes", Some(dispatch_body())),
        forbidden_in("wes", "", "task_submit")
    );
    // The site-wide group covers every group.
    let east = dispatched(&s, "sid", dispatch_in(&["authz_grp=east"]));
    // Cancelling: the group of the target task, from its state.
    let cancel = |task: &str| json!({"type": "cancel_task_request", "task_id": task});
    let (status, answer) = s.call("POST", "/tasks/cancel_task", "wes", Some(cancel(&west)));
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    assert_eq!(
        s.call("POST", "/tasks/cancel_task", "wes", Some(cancel(&east))),
        forbidden_in("wes", "east", "task_cancel")
    );
    assert_eq!(
        s.call("POST", "/tasks/cancel_task", "sid", Some(cancel(&west))),
        forbidden_in("sid", "west", "task_cancel")
    );
    // Scheduled tasks: writing needs task_submit in the task request's group.
    let scheduled = |labels: &[&str]| {
        json!({"task_request": dispatch_in(labels)["request"],
            "schedules": [{"period": "day", "at": "08:00"}]})
    };
    let (status, created) = s.call(
        "POST",
        "/scheduled_tasks",
        "wes",
        Some(scheduled(&["authz_grp=west"])),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        s.call("POST", "/scheduled_tasks", "wes", Some(scheduled(&[]))),
        forbidden_in("wes", "", "task_submit")
    );
    let id = created["id"].as_i64().expect("id");
    assert_eq!(
        s.call("DELETE", &format!("/scheduled_tasks/{id}"), "dave", None),
        forbidden_in("dave", "west", "task_submit")
    );
    // Through a proxy: the main process decides, its answers pass through.
    let (_proxy, pp) = proxy(s.port);
    assert_eq!(
        http(
            pp,
            "POST",
            "/tasks/dispatch_task",
            Some("wes"),
            Some(dispatch_in(&["authz_grp=east"]))
        ),
        forbidden_in("wes", "east", "task_submit")
    );
    assert_eq!(
        http(
            pp,
            "POST",
            "/scheduled_tasks",
            Some("dave"),
            Some(scheduled(&[]))
        ),
        forbidden_in("dave", "", "task_submit")
    );
    let (status, answer) = http(
        pp,
        "POST",
        "/tasks/dispatch_task",
        Some("wes"),
        Some(dispatch_in(&["authz_grp=west"])),
    );
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    // /permissions lists them with their groups.
    assert_eq!(
        s.call("GET", "/permissions", "wes", None),
        (
            200,
            json!([{"authz_grp": "west", "action": "task_cancel"},
                   {"authz_grp": "west", "action": "task_submit"}])
        )
    );
}

#[test]
fn the_user_store_reconnects_after_a_postgresql_restart() {
    let s = serve(true, &[]);
    assert_eq!(s.call("GET", "/user", "kim", None).0, 200);
    let pg = &s._pg.as_ref().expect("store").pg;
    pg.stop_server().expect("stop PostgreSQL");
    assert_eq!(
        s.call("GET", "/user", "kim", None),
        (503, json!({"detail": "the user store is unavailable"}))
    );
    pg.start_server().expect("start PostgreSQL");
    // The next request connects again.
    let start = Instant::now();
    loop {
        let answer = s.call("GET", "/user", "kim", None);
        if answer.0 == 200 {
            assert_eq!(
                answer.1,
                json!({"username": "kim", "is_admin": false, "roles": []})
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{answer:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        s.call("GET", "/favorite_tasks", "kim", None),
        (200, json!([]))
    );
}

/// What a python-socketio client gets subscribing to `rooms` as `user`: the acknowledgement of
/// each subscription and the sticky values received (`tests/python/rooms.py`).
fn read_rooms(port: u16, user: &str, rooms: &[&str]) -> Value {
    let out = python()
        .arg(repo().join("tests/python/rooms.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(token(user))
        .args(rooms)
        .output()
        .expect("python client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The first answer of `/_replicate` on `port` to `user` subscribing to `room`: `{"frame": R}`
/// for a room change of room R, or the refusal `{"error", "room"}`.
fn replicate_answer(port: u16, user: &str, room: &str) -> Value {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}/_replicate")
        .into_client_request()
        .expect("request");
    let bearer = format!("Bearer {}", token(user));
    req.headers_mut()
        .insert("authorization", bearer.parse().expect("header"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("upgrade");
        let hello = ws.next().await.expect("hello").expect("hello");
        assert!(hello.is_text(), "{hello:?}");
        let sub = json!({"op": "sub", "room": room}).to_string();
        ws.send(Message::text(sub)).await.expect("send");
        let answer = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("an answer within 30 s")
            .expect("a message")
            .expect("a message");
        let _ = ws.close(None).await;
        match answer {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Binary(b) => {
                // flags:u8 seq:u64 t:u64 sent_ms:u64 room_len:u16 room payload
                let len = u16::from_be_bytes([b[25], b[26]]) as usize;
                json!({ "frame": String::from_utf8_lossy(&b[27..27 + len]) })
            }
            other => panic!("unexpected {other:?}"),
        }
    })
}

#[test]
fn rooms_restricted_by_a_rule_need_the_permission_directly_and_through_a_proxy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = trace_gen(
        &dir.path().join("hotel.mcap"),
        &["--preset", "hotel", "--duration", "30s", "--seed", "5"],
    );
    let rule = "/doors=door_read";
    let s = serve(
        true,
        &[
            "--replay",
            recording.to_str().expect("path"),
            "--speed",
            "max",
            "--room-permission",
            rule,
        ],
    );
    let (_p, proxy_port) = proxy_with(s.port, &["--room-permission", rule]);
    // The proxy's link user reads for the proxy's clients: it needs the rooms' permissions too.
    grant(
        &s,
        "door_readers",
        &[("", "door_read")],
        &["reader", "proxy"],
    );
    // A permission in a task group does not open a room.
    grant(&s, "west", &[("west", "door_read")], &["westerner"]);
    let door = "/doors/L1_door_01/state";
    let map = "/building_map";
    // The door's final state, once the replay has ended (the engine's input time stands still
    // and every input is out).
    let start = Instant::now();
    let mut last = Value::Null;
    let expected = loop {
        std::thread::sleep(Duration::from_millis(500));
        let (_, health) = s.call("GET", "/health", "admin", None);
        let engine = health["engine"].clone();
        if engine["input_time_ms"].as_u64() > Some(0) && engine["lag_ms"] == 0 && engine == last {
            break s.call("GET", door, "admin", None).1;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{health}");
        last = engine;
    };
    assert!(expected.is_object(), "{expected}");
    for (port, via) in [(s.port, "main"), (proxy_port, "proxy")] {
        for user in ["reader", "admin"] {
            let got = read_rooms(port, user, &[door, map]);
            assert_eq!(got["acks"][door], json!({"room": door}), "{via} {user}");
            assert_eq!(got["acks"][map], json!({"room": map}), "{via} {user}");
            assert_eq!(got["values"][door], expected, "{via} {user}");
            assert!(got["values"][map].is_object(), "{via} {user}");
        }
        for user in ["westerner", "newcomer"] {
            let got = read_rooms(port, user, &[door, map]);
            let refusal = format!(
                "user {user} may not read {door}: it needs the permission \
                 {{authz_grp: \"\", action: \"door_read\"}} through one of its roles"
            );
            assert_eq!(
                got["acks"][door],
                json!({"room": door, "error": refusal}),
                "{via} {user}"
            );
            assert_eq!(got["acks"][map], json!({"room": map}), "{via} {user}");
            let received: Vec<&String> =
                got["values"].as_object().expect("values").keys().collect();
            assert_eq!(received, vec![map], "{via} {user}");
        }
    }
    // The replication link (`/_replicate`, which proxies follow) applies the same rules to its
    // user, on the main process and on the proxy.
    for (port, via) in [(s.port, "main"), (proxy_port, "proxy")] {
        for user in ["reader", "admin"] {
            let got = replicate_answer(port, user, door);
            assert_eq!(got, json!({ "frame": door }), "{via} {user}");
            let got = replicate_answer(port, user, map);
            assert_eq!(got, json!({ "frame": map }), "{via} {user}");
        }
        for user in ["westerner", "newcomer"] {
            let refusal = format!(
                "forbidden: user {user} may not read {door}: it needs the permission \
                 {{authz_grp: \"\", action: \"door_read\"}} through one of its roles"
            );
            let got = replicate_answer(port, user, door);
            assert_eq!(got, json!({"error": refusal, "room": door}), "{via} {user}");
            let got = replicate_answer(port, user, map);
            assert_eq!(got, json!({ "frame": map }), "{via} {user}");
        }
    }
    // The live view's list of entities names only the doors the user may read.
    let listed = |user: &str| {
        let (status, body) = s.call("GET", "/view/entities", user, None);
        assert_eq!(status, 200, "{body}");
        let doors = body["doors"].as_array().expect("doors").clone();
        (doors.len(), doors.contains(&json!("L1_door_01")))
    };
    let (all, has) = listed("reader");
    assert!(all > 1 && has, "{all}");
    assert_eq!(listed("admin"), (all, true));
    assert_eq!(listed("westerner"), (0, false));
    assert_eq!(listed("newcomer"), (0, false));
    // REST reads of the same paths need the same permission, on the main process and through
    // the proxy. The proxy does not answer a restricted room from its cache, even while a local
    // client follows it (an admin holds the door and the map there).
    let mut holder = python()
        .arg(repo().join("tests/python/rooms.py"))
        .arg(format!("http://127.0.0.1:{proxy_port}"))
        .arg(token("admin"))
        .args([door, map])
        .env("HOLD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python client");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let held: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(held["values"][door], expected);
    let cached = || {
        let metrics = common::http(proxy_port, "GET", "/metrics", None, None).text();
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("rmf_dash_proxy_rest_cached_total ")?
                    .parse::<u64>()
                    .ok()
            })
            .expect("rmf_dash_proxy_rest_cached_total")
    };
    let before = cached();
    for (port, via) in [(s.port, "main"), (proxy_port, "proxy")] {
        for user in ["reader", "admin"] {
            let got = http(port, "GET", door, Some(user), None);
            assert_eq!(got, (200, expected.clone()), "{via} {user}");
            let (status, doors) = http(port, "GET", "/doors", Some(user), None);
            assert_eq!(status, 200, "{via} {user}: {doors}");
        }
        for user in ["westerner", "newcomer"] {
            for path in [door, "/doors"] {
                let detail = format!(
                    "user {user} may not read {path}: it needs the permission \
                     {{authz_grp: \"\", action: \"door_read\"}} through one of its roles"
                );
                let got = http(port, "GET", path, Some(user), None);
                assert_eq!(got, (403, json!({ "detail": detail })), "{via} {user}");
            }
            assert_eq!(
                http(port, "GET", map, Some(user), None).0,
                200,
                "{via} {user}"
            );
        }
        assert_eq!(http(port, "GET", door, None, None).0, 401, "{via}");
    }
    // Through the proxy only the map's two reads came from its cache.
    assert_eq!(cached() - before, 2);
    drop(holder.stdin.take());
    assert!(holder.wait().expect("python client").success());
    // Rules need the users' store.
    let out = bin()
        .args(["serve", "--no-db", "--room-permission", rule])
        .output()
        .expect("serve");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--room-permission needs the users' store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
