// Retention on real processes: tasks and images really leave the disk, pending work stays, and kill -9 of the database
// or of storage in the middle of a sweep never shows a finished task without its image, nor leaves an image for good.
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { type Cluster, smallPng, startCluster, waitFor } from '../helpers/cluster.ts'
import { httpText } from '../helpers/processes.ts'
import { storedImages } from '../helpers/stored-files.ts'

let cluster: Cluster
afterEach(async () => {
  await cluster?.close()
})

const images = () => storedImages(join(cluster.dir, 'storage'))

/** `n` finished tasks, made the way a worker makes them (claim, store the result, finish), fast. */
async function finishedTasks(n: number): Promise<number[]> {
  const ids: number[] = []
  for (let i = 0; i < n; i++) ids.push(await cluster.uploadOk(smallPng(i)))
  for (let i = 0; i < n; i++) {
    const claim = JSON.parse((await httpText(cluster.address.master, '/getNewTask', { method: 'POST' })).text) as { id: number }
    const stored = await httpText(cluster.address.storage, `/sendImage?id=${claim.id}&state=finished`, { method: 'POST', body: smallPng(claim.id) })
    expect(stored.text).toBe('success')
    expect((await httpText(cluster.address.master, `/registerTaskFinished?id=${claim.id}`, { method: 'POST' })).text).toBe('success')
  }
  return ids
}

/**
 * The promise a client may rely on, checked on every id: once its finished image is gone, `/isReady` never answers 1
 * again. The image is looked at first: its removal comes after the mark that hides the task, so a 404 seen for the
 * image means every later read of the task answers 404.
 */
async function neverReadyWithoutImage(ids: readonly number[]): Promise<number> {
  let checked = 0
  for (const id of ids) {
    const image = await fetch(`http://${cluster.address.storage}/getImage?id=${id}&state=finished`).then(
      async (r) => {
        await r.body?.cancel()
        return r.status
      },
      () => undefined,
    )
    if (image !== 404) continue
    const ready = await httpText(cluster.address.master, `/isReady?id=${id}`).catch(() => undefined)
    if (ready === undefined) continue
    expect(`${id}: ${ready.status} ${ready.text}`).not.toBe(`${id}: 200 1`)
    checked++
  }
  return checked
}

describe('e2e: retention', () => {
  test('finished tasks leave the disk after PIXMILL_RETENTION_SECONDS; waiting and in-progress ones stay; ids go on', async () => {
    cluster = await startCluster({ env: { PIXMILL_RETENTION_SECONDS: '2', PIXMILL_LEASE_SECONDS: '600' } })
    const done = await finishedTasks(5)
    const waiting = await cluster.uploadOk(smallPng(50))
    const working = await cluster.uploadOk(smallPng(51))
    await httpText(cluster.address.master, '/getNewTask', { method: 'POST' })
    await httpText(cluster.address.master, '/getNewTask', { method: 'POST' })
    await httpText(cluster.address.master, `/releaseTask?id=${waiting}`, { method: 'POST' })
    expect(images().length).toBe(12)
    await waitFor('the finished tasks to go', () => images().length === 2, 15_000, 100)
    expect(images()).toEqual([`working/${waiting}.png`, `working/${working}.png`])
    for (const id of done) expect((await httpText(cluster.address.master, `/status?id=${id}`)).status).toBe(404)
    expect((await cluster.status(waiting)).state).toBe(0)
    expect((await cluster.status(working)).state).toBe(1)
    expect(await cluster.uploadOk(smallPng(52))).toBe(working + 1)
    const metrics = (await httpText(cluster.address.database, '/metrics')).text
    expect(metrics).toMatch(/^pixmill_tasks_removed_total\{by="sweep",[^}]*\} 5$/m)
    expect(metrics).toMatch(/^pixmill_sweep_last_run_timestamp_seconds\{[^}]*\} \d+/m)
    const storageMetrics = (await httpText(cluster.address.storage, '/metrics')).text
    expect(storageMetrics).toMatch(/^pixmill_storage_images_removed_total\{area="finished",[^}]*\} 5$/m)
    expect(storageMetrics).toMatch(/^pixmill_storage_images\{area="working",[^}]*\} 3$/m)
  }, 60_000)

  test('kill -9 of the database in the middle of a sweep: the sweep resumes at its restart, and no finished task ever shows without its image', async () => {
    cluster = await startCluster({ env: { PIXMILL_RETENTION_SECONDS: '3' } })
    const ids = await finishedTasks(300)
    const total = images().length
    await waitFor('the sweep to begin', () => images().length < total, 20_000, 5)
    await cluster.roles.database!.kill9()
    const left = images().length
    expect(left).toBeGreaterThan(0)
    await cluster.start('database')
    let checked = 0
    while (images().length > 0) {
      checked += await neverReadyWithoutImage(ids)
      await Bun.sleep(20)
    }
    expect(checked).toBeGreaterThan(0)
    expect((await httpText(cluster.address.database, '/list')).text).toBe('')
    expect(await cluster.uploadOk(smallPng(999))).toBe(300)
  }, 90_000)

  test('kill -9 of storage in the middle of a sweep: the tasks stay out of sight, and once storage is back every image goes', async () => {
    cluster = await startCluster({ env: { PIXMILL_RETENTION_SECONDS: '3' } })
    const ids = await finishedTasks(300)
    const total = images().length
    await waitFor('the sweep to begin', () => images().length < total, 20_000, 5)
    await cluster.roles.storage!.kill9()
    expect(images().length).toBeGreaterThan(0)
    // Meanwhile every task the sweep took is out of sight, with or without its images.
    await Bun.sleep(1500)
    await cluster.start('storage')
    await neverReadyWithoutImage(ids)
    await waitFor('every image to go', () => images().length === 0, 30_000, 50)
    expect((await httpText(cluster.address.database, '/list')).text).toBe('')
    const metrics = (await httpText(cluster.address.storage, '/metrics')).text
    // The tally kept across the crash agrees with the disk.
    expect(metrics).toMatch(/^pixmill_storage_images\{area="finished",[^}]*\} 0$/m)
    expect(metrics).toMatch(/^pixmill_storage_stored_bytes\{area="working",[^}]*\} 0$/m)
  }, 90_000)
})
