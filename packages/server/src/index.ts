/**
 * @mandate/server — the reference HTTP server: the API definition (shareable with clients), its handlers, the
 * configuration and the backend choice.
 *
 * @since 0.1.0
 */
export * from "./api/Api.ts"
export * from "./api/Auth.ts"
export * from "./api/Errors.ts"
export * as Config from "./Config.ts"
export * as Metrics from "./Metrics.ts"
export * as Server from "./Server.ts"
export * as Stores from "./Stores.ts"
