/**
 * The Mandate HTTP API, defined once: every group, its payloads, responses and errors as schemas. Share it with
 * clients (`HttpApiClient.make(Api)`); the server implements it in `http/`.
 *
 * @since 0.1.0
 */
import { HttpApi, OpenApi } from "effect/http-api"
import { AuditApi } from "./Audit.ts"
import { RequestErrors } from "./Auth.ts"
import { PlansApi } from "./Plans.ts"
import { PolicyApi } from "./Policy.ts"
import { AgentsApi, QueueApi } from "./Queue.ts"
import { RemoteApi } from "./Remote.ts"
import { OpsApi, SystemApi } from "./System.ts"
import { TasksApi } from "./Tasks.ts"
import { WebhooksApi } from "./Webhooks.ts"

/**
 * @category api
 * @since 0.1.0
 */
export class Api extends HttpApi.make("mandate")
  .add(TasksApi, PlansApi, PolicyApi, AuditApi, QueueApi, AgentsApi, RemoteApi, OpsApi, SystemApi, WebhooksApi)
  .middleware(RequestErrors)
  .annotate(HttpApi.ParseOptions, { errors: "all" })
  .annotate(HttpApi.HeadersParseOptions, {})
  .annotateMerge(
    OpenApi.annotations({
      title: "Mandate",
      version: "0.1.0",
      description:
        "Governed autonomous execution: tasks planned into steps, every step checked against policy, gated steps " +
        "approved by a second person, workers with leases and retries, and a tamper-evident ledger anchored on Qubic."
    })
  ) {}
