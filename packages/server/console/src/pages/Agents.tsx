/**
 * Agents and pools: each pool's agents online, degraded and offline (from the age of their last heartbeat), and
 * every agent with its status, load and capabilities; refreshed every few seconds.
 */
import { useEffect } from "preact/hooks"
import { get } from "../api.ts"
import { useLoad } from "../hooks.ts"
import { Badge, Empty, ErrorNote, Section, Time } from "../ui.tsx"
import type { Agent, Pools } from "../wire.ts"

export const AgentsPage = () => {
  const pools = useLoad(() => get<Pools>("/agents/pools"), "pools")
  const agents = useLoad(() => get<{ agents: ReadonlyArray<Agent> }>("/agents"), "agents")
  useEffect(() => {
    const timer = setInterval(() => {
      pools.reload()
      agents.reload()
    }, 5000)
    return () => clearInterval(timer)
  }, [pools.reload, agents.reload])
  return (
    <>
      <h1 tabIndex={-1}>Agents</h1>
      <Section title="Pools">
        <ErrorNote error={pools.error} />
        {pools.data !== undefined && pools.data.pools.length === 0 && <Empty>No agent has registered.</Empty>}
        {pools.data !== undefined && pools.data.pools.length > 0 && (
          <table class="list" aria-label="Pools">
            <thead>
              <tr>
                <th scope="col">Pool</th>
                <th scope="col">Agents</th>
                <th scope="col">Online</th>
                <th scope="col">Degraded</th>
                <th scope="col">Offline</th>
              </tr>
            </thead>
            <tbody>
              {pools.data.pools.map((p) => (
                <tr key={p.pool}>
                  <td data-label="Pool">{p.pool}</td>
                  <td data-label="Agents">{p.agents}</td>
                  <td data-label="Online">{p.online}</td>
                  <td data-label="Degraded">{p.degraded}</td>
                  <td data-label="Offline">{p.offline}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Agents">
        <ErrorNote error={agents.error} />
        {agents.data !== undefined && agents.data.agents.length > 0 && (
          <table class="list" aria-label="Agents">
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Pool</th>
                <th scope="col">Status</th>
                <th scope="col">Last heartbeat</th>
                <th scope="col">Load</th>
                <th scope="col">Capabilities</th>
              </tr>
            </thead>
            <tbody>
              {agents.data.agents.map((a) => (
                <tr key={a.agent_id}>
                  <td data-label="Agent">
                    <code>{a.agent_id}</code>
                  </td>
                  <td data-label="Pool">{a.pool}</td>
                  <td data-label="Status">
                    <Badge state={a.status} />
                  </td>
                  <td data-label="Last heartbeat">
                    <Time at={a.last_heartbeat_at} />
                  </td>
                  <td data-label="Load">{a.load === undefined ? "—" : `${Math.round(a.load * 100)} %`}</td>
                  <td data-label="Capabilities">{a.capabilities.join(", ") || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
    </>
  )
}
