'use strict'
// What the node-postgres scripts share, as tests/python/harness.py does for
// the psycopg ones: recording checks, and running a script's sections
// against the server named on the command line:
//
//     node SCRIPT HOST PORT [USER [DBNAME [SCHEMA]]]
//
// Each check prints "ok <check>" or "FAIL <check>: ..."; a section that
// throws (or takes longer than SECTION_TIMEOUT_MS) is reported and the next
// one runs. The run ends with "ALL OK" and exit status 0, or "FAILED n" and
// exit status 1. With SCHEMA the sections work in that schema (the
// connection's `options: '-c search_path=SCHEMA'`), created first (dropping
// any left from an earlier run) and dropped at the end: how a script is
// checked against PostgreSQL 15.

const util = require('util')
const { Client, Pool } = require('pg')

const SECTION_TIMEOUT_MS = 60000
const FAILURES = []
// Every client and pool a section opened, so that a section that failed or
// hung does not keep the process alive.
const OPEN = new Set()

function show(value) {
  return util.inspect(value, { depth: 6, breakLength: Infinity })
}

function check(name, actual, expected) {
  if (util.isDeepStrictEqual(actual, expected)) {
    console.log(`ok ${name}`)
  } else {
    fail(name, `expected ${show(expected)}, got ${show(actual)}`)
  }
}

function fail(name, why) {
  FAILURES.push(name)
  console.log(`FAIL ${name}: ${why}`)
}

function describeError(e) {
  if (e && e.code) return `${e.code} ${e.message}`
  return e && e.stack ? e.stack : String(e)
}

// Runs `run()` (a function returning a promise): it must reject with a
// server error whose SQLSTATE is `code`.
async function expectCode(name, run, code) {
  let result
  try {
    result = await run()
  } catch (e) {
    check(name, e.code, code)
    return e
  }
  fail(name, `no error (got ${show(result && result.rows)})`)
  return null
}

// Awaits `run()` and checks what it resolves to; a rejection is this
// check's failure, not the section's.
async function attempt(name, run, expected) {
  let actual
  try {
    actual = await run()
  } catch (e) {
    fail(name, `threw ${describeError(e)}`)
    return
  }
  check(name, actual, expected)
}

// A connected Client, closed by the caller or at the end of the run.
async function connect(config) {
  const client = new Client(config)
  client.on('error', (e) => console.log(`# client error event: ${describeError(e)}`))
  OPEN.add(client)
  await client.connect()
  return client
}

function pool(config) {
  const p = new Pool(config)
  p.on('error', (e) => console.log(`# pool error event: ${describeError(e)}`))
  OPEN.add(p)
  return p
}

async function close(clientOrPool) {
  OPEN.delete(clientOrPool)
  await clientOrPool.end()
}

async function withClient(config, fn) {
  const client = await connect(config)
  try {
    return await fn(client)
  } finally {
    await close(client)
  }
}

function withTimeout(promise, ms) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function abandonOpen() {
  for (const c of OPEN) {
    // A Client has a socket to destroy; a Pool ends its idle clients.
    if (c.connection && c.connection.stream) c.connection.stream.destroy()
    else c.end().catch(() => {})
  }
  OPEN.clear()
}

async function run(sections) {
  const [host, port, user, database, schema] = process.argv.slice(2)
  if (!host || !port) {
    console.log('usage: node SCRIPT HOST PORT [USER [DBNAME [SCHEMA]]]')
    process.exit(2)
  }
  const config = {
    host,
    port: Number(port),
    user: user || 'test',
    database: database || 'freshet',
    connectionTimeoutMillis: 10000,
    query_timeout: 20000, // a query that gets no answer rejects instead of hanging
  }
  let exitCode = 0
  try {
    if (schema) {
      await withClient(config, async (c) => {
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
        await c.query(`CREATE SCHEMA ${schema}`)
      })
      config.options = `-c search_path=${schema}`
    }
  } catch (e) {
    fail('create schema', describeError(e))
    sections = []
  }
  try {
    for (const section of sections) {
      try {
        await withTimeout(section(config), SECTION_TIMEOUT_MS)
      } catch (e) {
        fail(`section ${section.name}`, `threw ${describeError(e)}`)
        abandonOpen()
      }
    }
  } finally {
    if (config.options) {
      try {
        await withClient(config, (c) => c.query(`DROP SCHEMA ${schema} CASCADE`))
      } catch (e) {
        fail('drop schema', describeError(e))
      }
    }
    if (FAILURES.length) {
      console.log(`FAILED ${FAILURES.length}: ${FAILURES.join(', ')}`)
      exitCode = 1
    } else {
      console.log('ALL OK')
    }
    abandonOpen()
    process.exit(exitCode)
  }
}

module.exports = { check, fail, attempt, expectCode, connect, pool, close, withClient, run, show, Client, Pool }
