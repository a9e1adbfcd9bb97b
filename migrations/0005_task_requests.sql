-- The original request of every task dispatched through rmf-dash (`POST /tasks/dispatch_task`,
-- `POST /tasks/robot_task`, scheduled tasks), as rmf-web's api-server keeps them: served by
-- `GET /tasks/requests?task_ids=` and `GET /tasks/{task_id}/request`. Written by the request
-- handler before it answers (and before the task's state is fed to the engine), so a task named
-- anywhere after its dispatch has its request. `request` keeps the JSON text as sent to RMF
-- (`json`, not `jsonb`: the field order is the client's).
CREATE TABLE IF NOT EXISTS task_requests (
    task_id text PRIMARY KEY,
    request json NOT NULL,
    requester text NOT NULL,
    unix_millis_request_time bigint NOT NULL
);
