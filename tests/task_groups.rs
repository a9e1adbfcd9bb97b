//! The permission group of a command on an existing task is the group of that task as stored,
//! never one the client claims (DESIGN.md invariant 11), against the real binary with a real
//! throwaway PostgreSQL cluster and the loopback RMF link, directly and through a proxy:
//! - a user with every task permission in group A is refused (403 naming group B) each of the
//!   seven commands on a task of group B, whatever labels the body carries (its schema's
//!   `labels` or a `request.labels` as a dispatch has), and nothing reaches RMF;
//! - the same user carries out each of them on a task of group A;
//! - a task the server does not know is in the site-wide group: refused to group users,
//!   carried out for a site-wide permission;
//! - the bodies of these commands reject unknown fields (422 `extra_forbidden`, nothing sent).

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

mod common;
use common::{Cluster, Proc, Server, cluster};

const SECRET: &str = "task-groups-secret";

/// A server with a store, its cluster, and (when asked) a proxy in front of it.
struct Site {
    port: u16,
    _server: Proc,
    _pg: Cluster,
    proxy: Option<(Proc, u16)>,
}

impl Site {
    fn start(with_proxy: bool) -> Self {
        let pg = cluster();
        let (server, port) = Server::serve()
            .args(["--jwt-secret", SECRET, "--admin-user", "admin"])
            .args(["--database-url", pg.url()])
            .start();
        let proxy = with_proxy.then(|| {
            Server::proxy()
                .args(["--jwt-secret", SECRET, "--upstream"])
                .arg(format!("http://127.0.0.1:{port}"))
                .arg("--upstream-token")
                .arg(common::token(SECRET, "proxy"))
                .start()
        });
        Site {
            port,
            _server: server,
            _pg: pg,
            proxy,
        }
    }

    /// A request to the main process.
    fn call(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> (u16, Value) {
        common::call_as(SECRET, self.port, method, path, Some(user), body)
    }

    /// A command as clients send it: through the proxy when there is one.
    fn command(&self, path: &str, user: &str, body: Value) -> (u16, Value) {
        let port = self.proxy.as_ref().map_or(self.port, |(_, p)| *p);
        common::call_as(SECRET, port, "POST", path, Some(user), Some(body))
    }

    fn ok(&self, method: &str, path: &str, body: Value) {
        let (status, answer) = self.call(method, path, "admin", Some(body));
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }

    /// Role `role` with `actions` in group `group`, given to `user`.
    fn grant(&self, role: &str, group: &str, actions: &[&str], user: &str) {
        self.ok("POST", "/admin/roles", json!({"name": role}));
        for action in actions {
            self.ok(
                "POST",
                &format!("/admin/roles/{role}/permissions"),
                json!({"authz_grp": group, "action": action}),
            );
        }
        assert_eq!(self.call("GET", "/user", user, None).0, 200);
        self.ok(
            "POST",
            &format!("/admin/users/{user}/roles"),
            json!({"name": role}),
        );
    }

    /// A task dispatched by the admin with `labels`, once its state is shown; its id.
    fn task_with(&self, labels: &[&str]) -> String {
        let body = json!({"type": "dispatch_task_request", "request": {"category": "patrol",
            "description": {"places": ["pantry"], "rounds": 1}, "labels": labels}});
        let (status, answer) = self.call("POST", "/tasks/dispatch_task", "admin", Some(body));
        assert_eq!(status, 200, "{answer}");
        let id = answer["state"]["booking"]["id"]
            .as_str()
            .expect("task id")
            .to_string();
        let start = Instant::now();
        while self
            .call("GET", &format!("/tasks/{id}/state"), "admin", None)
            .0
            != 200
        {
            assert!(start.elapsed() < Duration::from_secs(10), "{id} not shown");
            std::thread::sleep(Duration::from_millis(20));
        }
        id
    }

    /// The types of the task API requests RMF got since the last call (then forgotten).
    fn sent_to_rmf(&self) -> Vec<String> {
        let (status, published) = self.call("GET", "/_loopback/published", "admin", None);
        assert_eq!(status, 200, "{published}");
        assert_eq!(
            self.call("DELETE", "/_loopback/published", "admin", None).0,
            204
        );
        published
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|p| p["message"]["json_msg"].as_str())
            .filter_map(|m| serde_json::from_str::<Value>(m).ok())
            .filter_map(|m| m["type"].as_str().map(str::to_string))
            .collect()
    }
}

/// One command on an existing task: its route, the action it needs, the `type` of its body,
/// the field naming the task, and whether its schema has `labels`.
struct Command {
    path: &'static str,
    action: &'static str,
    type_: &'static str,
    target: &'static str,
    labels: bool,
}

const COMMANDS: [Command; 7] = [
    Command {
        path: "/tasks/cancel_task",
        action: "task_cancel",
        type_: "cancel_task_request",
        target: "task_id",
        labels: true,
    },
    Command {
        path: "/tasks/kill_task",
        action: "task_cancel",
        type_: "kill_task_request",
        target: "task_id",
        labels: true,
    },
    Command {
        path: "/tasks/interrupt_task",
        action: "task_interrupt",
        type_: "interrupt_task_request",
        target: "task_id",
        labels: true,
    },
    Command {
        path: "/tasks/resume_task",
        action: "task_resume",
        type_: "resume_task_request",
        target: "for_task",
        labels: true,
    },
    Command {
        path: "/tasks/rewind_task",
        action: "task_rewind",
        type_: "rewind_task_request",
        target: "task_id",
        labels: false,
    },
    Command {
        path: "/tasks/skip_phase",
        action: "task_skip",
        type_: "skip_phase_request",
        target: "task_id",
        labels: true,
    },
    Command {
        path: "/tasks/undo_skip_phase",
        action: "task_skip",
        type_: "undo_phase_skip_request",
        target: "for_task",
        labels: true,
    },
];

impl Command {
    /// A valid body on `task`.
    fn body(&self, task: &str) -> Value {
        let mut b = Map::new();
        b.insert("type".into(), json!(self.type_));
        b.insert(self.target.into(), json!(task));
        if ["/tasks/rewind_task", "/tasks/skip_phase"].contains(&self.path) {
            b.insert("phase_id".into(), json!(1));
        }
        Value::Object(b)
    }

    /// The bodies on `task` that claim group `group`: through the schema's `labels`, through a
    /// `request.labels` (a dispatch's place for them), and both.
    fn claiming(&self, task: &str, group: &str) -> Vec<Value> {
        let claim = json!([format!("authz_grp={group}")]);
        let mut own = self.body(task);
        own["labels"] = claim.clone();
        let mut nested = self.body(task);
        nested["request"] = json!({"labels": claim});
        let mut both = own.clone();
        both["request"] = nested["request"].clone();
        if self.labels {
            vec![own, nested, both]
        } else {
            vec![nested]
        }
    }
}

const ALL_ACTIONS: [&str; 6] = [
    "task_submit",
    "task_cancel",
    "task_interrupt",
    "task_resume",
    "task_rewind",
    "task_skip",
];

fn forbidden(user: &str, group: &str, action: &str) -> (u16, Value) {
    (
        403,
        json!({"detail": format!(
            "user {user} may not do this: it needs the permission {{authz_grp: \"{group}\", \
             action: \"{action}\"}} through one of its roles"
        )}),
    )
}

fn extra_forbidden(field: &str) -> (u16, Value) {
    (
        422,
        json!({"detail": [{"type": "extra_forbidden", "loc": ["body", field],
            "msg": "Extra inputs are not permitted"}]}),
    )
}

#[test]
fn task_commands_are_decided_on_the_group_of_the_stored_task() {
    groups(false);
}

#[test]
fn task_commands_are_decided_on_the_group_of_the_stored_task_through_a_proxy() {
    groups(true);
}

fn groups(with_proxy: bool) {
    let site = Site::start(with_proxy);
    // ann may do everything to tasks of group A; sid may cancel tasks of every group.
    site.grant("a-ops", "A", &ALL_ACTIONS, "ann");
    site.grant("site-ops", "", &["task_cancel"], "sid");
    let a = site.task_with(&["authz_grp=A", "zone=west"]);
    let b = site.task_with(&["zone=east", "authz_grp=B"]);
    site.sent_to_rmf();

    // A task of group B: refused, naming B, whatever the body claims; nothing reaches RMF.
    for c in &COMMANDS {
        assert_eq!(
            site.command(c.path, "ann", c.body(&b)),
            forbidden("ann", "B", c.action),
            "{}",
            c.path
        );
        for body in c.claiming(&b, "A") {
            assert_eq!(
                site.command(c.path, "ann", body.clone()),
                forbidden("ann", "B", c.action),
                "{} {body}",
                c.path
            );
        }
    }
    assert_eq!(site.sent_to_rmf(), Vec::<String>::new());

    // Unknown fields: 422 on every route, for a user who may do the command; nothing sent.
    for c in &COMMANDS {
        for body in c
            .claiming(&a, "A")
            .into_iter()
            .filter(|b| b.get("request").is_some())
        {
            assert_eq!(
                site.command(c.path, "ann", body.clone()),
                extra_forbidden("request"),
                "{} {body}",
                c.path
            );
        }
        let mut body = c.body(&a);
        body["authz_grp"] = json!("A");
        assert_eq!(
            site.command(c.path, "admin", body),
            extra_forbidden("authz_grp"),
            "{}",
            c.path
        );
    }
    assert_eq!(site.sent_to_rmf(), Vec::<String>::new());

    // A task of group A: each command is carried out (the schema's labels are accepted).
    for c in &COMMANDS {
        let body = c
            .claiming(&a, "A")
            .into_iter()
            .find(|b| b.get("request").is_none())
            .unwrap_or_else(|| c.body(&a));
        let (status, answer) = site.command(c.path, "ann", body);
        assert_eq!(
            (status, &answer["success"]),
            (200, &json!(true)),
            "{}: {answer}",
            c.path
        );
    }
    let types: Vec<String> = COMMANDS.iter().map(|c| c.type_.to_string()).collect();
    assert_eq!(site.sent_to_rmf(), types);

    // A task the server does not know is in the site-wide group: refused to ann, whatever she
    // claims, carried out for sid (whose permission covers every group) and the admin.
    let cancel = &COMMANDS[0];
    for body in cancel.claiming("no-such-task", "A") {
        assert_eq!(
            site.command(cancel.path, "ann", body),
            forbidden("ann", "", "task_cancel")
        );
    }
    for user in ["sid", "admin"] {
        let (status, answer) = site.command(cancel.path, user, cancel.body("no-such-task"));
        assert_eq!((status, &answer["success"]), (200, &json!(true)), "{user}");
    }
    // sid's site-wide permission covers group B.
    let (status, answer) = site.command(cancel.path, "sid", cancel.body(&b));
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    assert_eq!(
        site.sent_to_rmf(),
        vec!["cancel_task_request"; 3]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    );
    // Dispatch keeps the group of the request's own labels (the task does not exist yet).
    let dispatch = |labels: &[&str]| {
        json!({"type": "dispatch_task_request", "request": {"category": "patrol",
            "description": {"places": ["pantry"], "rounds": 1}, "labels": labels}})
    };
    assert_eq!(
        site.command("/tasks/dispatch_task", "ann", dispatch(&["authz_grp=B"])),
        forbidden("ann", "B", "task_submit")
    );
    let (status, answer) = site.command("/tasks/dispatch_task", "ann", dispatch(&["authz_grp=A"]));
    assert_eq!(status, 200, "{answer}");
}
