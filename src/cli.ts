#!/usr/bin/env bun
// The command-line client: `bun run pixmill <command>` (see `pixmill --help`).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { type Api, CallFailed, createApi } from './cli/api.ts'
import { processFiles, UsageProblem } from './cli/process.ts'
import { lineProgress, terminalProgress } from './cli/progress.ts'
import { createKvClient } from './clients/kv-client.ts'
import { kvPeer } from './clients/peer-address.ts'

const DEFAULT_MASTER = 'localhost:3003'
const ADDRESS = /^[^\s:/]+:\d{1,5}$/

function address(value: string): string {
  if (!ADDRESS.test(value)) throw new InvalidArgumentError('expected host:port')
  return value
}

function positive(value: string): number {
  if (!/^[1-9]\d{0,3}$/.test(value)) throw new InvalidArgumentError('expected a whole number from 1 to 9999')
  return Number(value)
}

function taskId(value: string): number {
  if (!/^(0|[1-9]\d{0,14})$/.test(value)) throw new InvalidArgumentError('expected a task id (0, 1, 17, ...)')
  return Number(value)
}

interface Where {
  readonly master?: string
  readonly kv?: string
  readonly token?: string
}

/** The master given, or the one the kv store names, or the default; with the token given or PIXMILL_TOKEN. */
async function connect(where: Where): Promise<Api> {
  let master = where.master ?? DEFAULT_MASTER
  if (where.kv && !where.master) master = await kvPeer(createKvClient(where.kv, fetch), 'masterAddress', { attempts: 3 }).current()
  return createApi({ master, token: where.token ?? (process.env.PIXMILL_TOKEN || undefined) })
}

const masterOptions = (command: Command) =>
  command
    .addOption(new Option('--master <host:port>', `the master (default ${DEFAULT_MASTER})`).argParser(address).conflicts('kv'))
    .addOption(new Option('--kv <host:port>', 'find the master through this kv store').argParser(address))

/** The key given with --key, else PIXMILL_TASK_KEY (which keeps it out of the shell's history). */
const taskKey = (options: { key?: string }) => options.key ?? (process.env.PIXMILL_TASK_KEY || undefined)

const tokenOption = (command: Command) => command.option('--token <token>', 'the operator token (default: PIXMILL_TOKEN)')

/** Exit statuses: 0 all well, 1 an image failed or was refused (or a call failed), 2 bad usage, 130 interrupted. */
async function main(argv: readonly string[]): Promise<number> {
  let status = 0
  const program = new Command('pixmill')
    .description('Swap the red and green channels of PNG images on a pixmill system.')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) })
    .showHelpAfterError('(pixmill --help lists the commands)')

  masterOptions(
    program
      .command('process')
      .description('upload every PNG of these files and folders, wait for each, and download the results to --out')
      .argument('<paths...>', 'PNG files and folders of PNGs')
      .requiredOption('-o, --out <dir>', 'where the results go, under the names of their inputs')
      .option('-c, --concurrency <n>', 'uploads at once', positive, 4)
      .option('-r, --recursive', 'folders with their subfolders (kept in --out)', false)
      .option('--overwrite', 'replace results already in --out (otherwise they are skipped)', false)
      .option('--resume', 'after an interruption: skip what finished, wait for what was uploaded', false),
  ).action(async (paths: string[], options: Where & { out: string; concurrency: number; recursive: boolean; overwrite: boolean; resume: boolean }) => {
    const api = await connect(options)
    const stop = new AbortController()
    const interrupt = () => {
      if (stop.signal.aborted) process.exit(130)
      process.stderr.write('\nstopping: nothing new is started (Ctrl-C again to quit at once)\n')
      stop.abort(new Error('interrupted'))
    }
    process.on('SIGINT', interrupt)
    const view = process.stderr.isTTY ? terminalProgress() : lineProgress()
    const started = performance.now()
    const result = await processFiles(api, { paths, ...options }, view, stop.signal)
    process.off('SIGINT', interrupt)
    const { counts } = result
    const seconds = (performance.now() - started) / 1000
    const lines = [
      `${counts.done} done, ${counts.failed} failed, ${counts.skipped} skipped of ${counts.total} in ${seconds.toFixed(1)} s` +
        (counts.done > 0 ? ` (${(counts.done / seconds).toFixed(1)} images/s)` : ''),
      ...result.failures.map((f) => `  failed ${f.name}: ${f.reason}`),
    ]
    if (result.interrupted) {
      lines.push(
        `interrupted: ${result.interrupted.uploaded} uploaded and not yet downloaded, ${result.interrupted.notStarted} not started; ` +
          `\`pixmill process ... --out ${options.out} --resume\` takes it up again`,
      )
    }
    process.stdout.write(`${lines.join('\n')}\n`)
    status = result.interrupted ? 130 : result.failures.length > 0 ? 1 : 0
  })

  const keyOption = (command: Command) =>
    command.option('--key <key>', 'the task key its upload answered (X-Task-Key), when the master keeps results private; default: PIXMILL_TASK_KEY')

  keyOption(
    masterOptions(program.command('status').description("a task's state, attempts and last error, as JSON").argument('<id>', 'task id', taskId)),
  ).action(async (id: number, options: Where & { key?: string }) => {
    const api = await connect(options)
    process.stdout.write(`${JSON.stringify(await api.status(id, undefined, taskKey(options)), null, 2)}\n`)
  })

  keyOption(
    masterOptions(
      program
        .command('get')
        .description("download a finished task's image")
        .argument('<id>', 'task id', taskId)
        .option('-o, --output <file>', 'where to write it (default: pixmill-<id>.png)'),
    ),
  ).action(async (id: number, options: Where & { output?: string; key?: string }) => {
    const api = await connect(options)
    const file = options.output ?? `pixmill-${id}.png`
    const bytes = await api.download(id, file, undefined, taskKey(options))
    process.stdout.write(`${file} (${bytes} bytes)\n`)
  })

  for (const [name, path, what] of [
    ['retry', '/retryTask', 'put a failed task back in the queue'],
    ['delete', '/deleteTask', 'remove a finished or failed task with its images'],
  ] as const) {
    tokenOption(masterOptions(program.command(name).description(`${what} (an operator's call)`).argument('<id>', 'task id', taskId))).action(
      async (id: number, options: Where) => {
        await (await connect(options)).operator(path, id)
        process.stdout.write(`task ${id}: ${name === 'retry' ? 'queued again' : 'deleted'}\n`)
      },
    )
  }

  try {
    await program.parseAsync(argv, { from: 'user' })
    return status
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2
    if (error instanceof UsageProblem) {
      process.stderr.write(`pixmill: ${error.message}\n`)
      return 2
    }
    process.stderr.write(`pixmill: ${error instanceof CallFailed ? error.message : (error as Error).message}\n`)
    return 1
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)))

export { main }
