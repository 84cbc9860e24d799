/**
 * The ledger: its size, how many checkpoints were signed and anchored, the signing key, and the latest
 * checkpoints, each signature checked in this browser, with its anchor transaction; auditors can anchor now.
 */
import { useEffect, useState } from "preact/hooks"
import { call, get } from "../api.ts"
import { useLoad } from "../hooks.ts"
import { Badge, Empty, ErrorNote, Hash, Section, Time } from "../ui.tsx"
import { verifyCheckpointIn } from "../verify.ts"
import type { AnchorReceipt, Checkpoint, LedgerOverview } from "../wire.ts"

export const LedgerPage = () => {
  const overview = useLoad(() => get<LedgerOverview>("/ledger", { limit: 20 }), "ledger")
  const [anchoring, setAnchoring] = useState(false)
  const [error, setError] = useState<Error | undefined>(undefined)
  const anchorNow = async () => {
    setAnchoring(true)
    setError(undefined)
    try {
      await call("POST", "/ledger/anchor")
      overview.reload()
    } catch (e) {
      setError(e as Error)
    } finally {
      setAnchoring(false)
    }
  }
  const o = overview.data
  return (
    <>
      <h1 tabIndex={-1}>Ledger</h1>
      <ErrorNote error={overview.error} />
      {o !== undefined && (
        <>
          <dl class="stats">
            <div>
              <dt>Entries</dt>
              <dd data-testid="ledger-size">{o.size}</dd>
            </div>
            <div>
              <dt>Checkpoints signed</dt>
              <dd>{o.checkpoint_count}</dd>
            </div>
            <div>
              <dt>Anchored</dt>
              <dd>{o.anchored_count}</dd>
            </div>
            <div>
              <dt>Signing key</dt>
              <dd>
                <Hash value={o.key_id} />
              </dd>
            </div>
          </dl>
          <div class="actions">
            <button type="button" disabled={anchoring} onClick={() => void anchorNow()}>
              {anchoring ? "Anchoring… (waits for the chain)" : "Checkpoint and anchor now"}
            </button>
          </div>
          <ErrorNote error={error} />
          <Section title="Latest checkpoints">
            {o.checkpoints.length === 0 ? (
              <Empty>No checkpoint yet.</Empty>
            ) : (
              <table class="list" aria-label="Checkpoints">
                <thead>
                  <tr>
                    <th scope="col">Size</th>
                    <th scope="col">Root</th>
                    <th scope="col">Signed</th>
                    <th scope="col">Signature, checked here</th>
                    <th scope="col">Anchor</th>
                  </tr>
                </thead>
                <tbody>
                  {o.checkpoints.map((r) => (
                    <tr key={r.checkpoint.size}>
                      <td data-label="Size">{r.checkpoint.size}</td>
                      <td data-label="Root">
                        <Hash value={r.checkpoint.root} />
                      </td>
                      <td data-label="Signed">
                        <Time at={r.checkpoint.timestamp} />
                      </td>
                      <td data-label="Signature, checked here">
                        <SignatureBadge checkpoint={r.checkpoint} publicKey={o.public_key} />
                      </td>
                      <td data-label="Anchor">
                        {r.anchor === undefined ? (
                          <span class="hint">not anchored</span>
                        ) : (
                          <AnchorCell receipt={r.anchor} />
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Section>
        </>
      )}
    </>
  )
}

/** The anchor transaction as the chain reports it now (the stored receipt may be older). */
const AnchorCell = ({ receipt }: { readonly receipt: AnchorReceipt }) => {
  const tx = useLoad(() => get<AnchorReceipt>(`/tx/${encodeURIComponent(receipt.tx_id)}`), receipt.tx_id)
  const chain = tx.data
  return (
    <>
      <Hash value={receipt.tx_id} length={10} /> <Badge state={chain?.status ?? receipt.status} />{" "}
      <span class="hint">tick {chain?.tick ?? receipt.tick}</span>
      {chain !== undefined && (chain.root !== receipt.root || chain.size !== receipt.size) && (
        <span class="bad-text"> ✗ the chain carries another root</span>
      )}
      {tx.error !== undefined && <span class="bad-text"> ✗ {tx.error.message}</span>}
    </>
  )
}

const SignatureBadge = ({ checkpoint, publicKey }: { readonly checkpoint: Checkpoint; readonly publicKey: string }) => {
  const [ok, setOk] = useState<boolean | undefined>(undefined)
  useEffect(() => {
    let current = true
    void verifyCheckpointIn(checkpoint, publicKey).then((check) => {
      if (current) setOk(check.ok)
    })
    return () => {
      current = false
    }
  }, [checkpoint.signature, publicKey])
  return ok === undefined ? (
    <span class="badge badge-idle">… checking</span>
  ) : ok ? (
    <span class="badge badge-ok">
      <span aria-hidden="true">✓</span> Ed25519 valid
    </span>
  ) : (
    <span class="badge badge-bad">
      <span aria-hidden="true">✗</span> invalid
    </span>
  )
}
