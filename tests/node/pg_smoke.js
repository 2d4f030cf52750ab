'use strict'
// node-postgres (`pg` 8, `pg-cursor` 2) against a Freshet server:
//
//     node pg_smoke.js HOST PORT [USER [DBNAME [SCHEMA]]]
//
// Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
// each that does not; a section that throws is reported and the next one
// runs. Ends with "ALL OK" and exit status 0, or "FAILED n" and exit status 1.
// Run `npm install` in this directory first.
//
// Every expectation is what pg gives against PostgreSQL 15. To check that,
// run it against one in a scratch schema, which the script creates (dropping
// any left from an earlier run), works in (search_path set through the
// connection's `options`), and drops at the end:
//
//     node pg_smoke.js 127.0.0.1 5432 postgres test node_scratch
//
// Covered: Client and Pool connect; DDL (CREATE/DROP TABLE, VIEW,
// MATERIALIZED VIEW) and its `command`; `query` with `$1` parameters of int,
// bigint (a string in results), float8, numeric (a string), text, bool, date
// (a local-midnight Date), timestamptz (a JS Date round trip), jsonb (an
// object parameter sent as JSON, the result parsed), bytea (a Buffer, which pg
// sends as a binary-format parameter), NULL, int[] and text[]; the same types
// through a table's columns, with parameter types inferred from the columns;
// INSERT ... RETURNING; the simple protocol (a query without parameters, a
// multi-statement string giving an array of results) and the extended one
// (parameters; named prepared statements `{name, text, values}` reused, so
// pg sends Parse once and Bind/Execute after); `rowMode: 'array'`; `fields`
// (names and dataTypeID OIDs); rowCount and `command` of
// INSERT/UPDATE/DELETE/SELECT in both protocols; BEGIN/COMMIT, ROLLBACK
// undoing writes, SAVEPOINT/ROLLBACK TO/RELEASE, an error inside a
// transaction (25P02 until ROLLBACK; COMMIT then reports ROLLBACK); errors
// 23505, 42P01, 22012, 42601 in both protocols with the client usable after
// each; pg-cursor reading in batches (a named portal, Execute with a row
// limit and Flush, PortalSuspended between batches) inside a transaction and
// outside one, with rowMode 'array' and an error; a view; a materialized
// view read after new rows are made visible; a Pool running concurrent
// queries, inserts and transactions.
//
// Materialized views: Freshet makes a view current with `FLUSH`, which
// PostgreSQL does not have (a 42601 syntax error); PostgreSQL needs
// `REFRESH MATERIALIZED VIEW`, which Freshet refuses (0A000). The script
// asks `SELECT version()`: if it names Freshet it sends FLUSH, otherwise
// REFRESH MATERIALIZED VIEW region_totals. Everything else, including every
// expected value, is the same on both.

const Cursor = require('pg-cursor')
const { check, fail, attempt, expectCode, connect, pool, close, withClient, run, show } = require('./harness')

const N = 25 // rows in the cursor table

async function connecting(config) {
  const client = await connect(config)
  check('client: processID', typeof client.processID, 'number')
  const r = await client.query('SELECT 1 AS one')
  check('client: first query', r.rows, [{ one: 1 }])
  await close(client)
  const p = pool({ ...config, max: 2 })
  const pooled = await p.connect()
  check('pool: connect', (await pooled.query('SELECT 2 AS two')).rows, [{ two: 2 }])
  pooled.release()
  check('pool: query', (await p.query('SELECT $1::int AS three', [3])).rows, [{ three: 3 }])
  check('pool: one client kept', [p.totalCount, p.idleCount], [1, 1])
  await close(p)
}

async function setup(config) {
  await withClient(config, async (c) => {
    let r = await c.query(
      'CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty bigint, price numeric(10,2), ' +
        'ok bool, born date, at timestamptz, doc jsonb, raw bytea)'
    )
    check('ddl: create table command', [r.command, r.rowCount], ['CREATE', null])
    await c.query('CREATE TABLE cur (id int PRIMARY KEY, name text)')
    const values = []
    for (let i = 1; i <= N; i++) values.push(`(${i}, 'n${i}')`)
    r = await c.query(`INSERT INTO cur VALUES ${values.join(', ')}`)
    check('ddl: cursor table rows', r.rowCount, N)
    await c.query('CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, amount numeric(10,2))')
    await c.query('CREATE TABLE pooled (id int PRIMARY KEY, who text)')
  })
}

async function parameters(config) {
  await withClient(config, async (c) => {
    const one = async (sql, values) => (await c.query(sql, values)).rows[0].v
    await attempt('param: int', () => one('SELECT $1::int AS v', [42]), 42)
    await attempt('param: int from a string', () => one('SELECT $1::int + 1 AS v', ['41']), 42)
    await attempt('param: bigint is a string', () => one('SELECT $1::bigint AS v', ['9007199254740993']), '9007199254740993')
    await attempt('param: bigint from a number', () => one('SELECT $1::bigint * 2 AS v', [21]), '42')
    await attempt('param: float8', () => one('SELECT $1::float8 AS v', [1.5]), 1.5)
    await attempt('param: float8 arithmetic', () => one('SELECT $1::float8 / 4 AS v', [1]), 0.25)
    await attempt('param: numeric is a string', () => one('SELECT $1::numeric AS v', ['12.50']), '12.50')
    await attempt('param: numeric from a number', () => one('SELECT $1::numeric(10,2) AS v', [3]), '3.00')
    await attempt('param: text', () => one('SELECT $1::text AS v', ['héllo, wörld']), 'héllo, wörld')
    await attempt('param: text concat', () => one("SELECT $1::text || '!' AS v", ['hi']), 'hi!')
    await attempt('param: bool true', () => one('SELECT $1::bool AS v', [true]), true)
    await attempt('param: bool false', () => one('SELECT NOT $1::bool AS v', [true]), false)
    const ymdh = (d) => (d instanceof Date ? [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours()] : d)
    await attempt('param: date is a local-midnight Date', async () => ymdh(await one('SELECT $1::date AS v', ['2024-02-29'])), [2024, 2, 29, 0])
    await attempt('param: date as text', () => one('SELECT ($1::date + 1)::text AS v', ['2024-02-29']), '2024-03-01')
    const when = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678))
    const ms = (t) => (t instanceof Date ? t.getTime() : t)
    await attempt('param: timestamptz Date round trip', async () => ms(await one('SELECT $1::timestamptz AS v', [when])), when.getTime())
    await attempt('param: timestamptz literal', async () => ms(await one("SELECT '2024-01-02 03:04:05+00'::timestamptz AS v")), Date.UTC(2024, 0, 2, 3, 4, 5))
    const doc = { a: 1, b: [true, null, 'x'], c: { d: 'e' } }
    await attempt('param: jsonb object', () => one('SELECT $1::jsonb AS v', [doc]), doc)
    await attempt('param: jsonb ->>', () => one("SELECT $1::jsonb ->> 'a' AS v", [doc]), '1')
    await attempt('param: jsonb array via JSON.stringify', () => one('SELECT $1::jsonb AS v', [JSON.stringify([1, 'two'])]), [1, 'two'])
    const bytes = Buffer.from([0, 1, 2, 254, 255])
    await attempt('param: bytea Buffer', () => one('SELECT $1::bytea AS v', [bytes]), bytes)
    await attempt('param: bytea length', () => one('SELECT length($1::bytea) AS v', [bytes]), 5)
    await attempt('param: null int', () => one('SELECT $1::int AS v', [null]), null)
    await attempt('param: null text is null', () => one('SELECT $1::text IS NULL AS v', [null]), true)
    await attempt('param: int[]', () => one('SELECT $1::int[] AS v', [[1, 2, 3]]), [1, 2, 3])
    await attempt('param: text[]', () => one('SELECT $1::text[] AS v', [['a', 'b c', null]]), ['a', 'b c', null])
    await attempt(
      'param: several, one used twice',
      async () => (await c.query('SELECT $1::int AS a, $2::text AS b, $1::int + $3::int AS c', [1, 'x', 2])).rows,
      [{ a: 1, b: 'x', c: 3 }]
    )
  })
}

async function tableTypes(config) {
  await withClient(config, async (c) => {
    const when = new Date(Date.UTC(2023, 11, 31, 23, 59, 59, 500))
    const doc = { tags: ['x', 'y'], n: 2 }
    const raw = Buffer.from('\\x00 bytes\n', 'utf8')
    let r = await c.query('INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
      1, 'apple', '10000000000', '1.25', true, '2020-01-31', when, doc, raw,
    ])
    check('table: insert with params', [r.command, r.rowCount], ['INSERT', 1])
    r = await c.query('INSERT INTO items (id, name) VALUES ($1, $2)', [2, 'pear'])
    check('table: insert some columns', [r.command, r.rowCount], ['INSERT', 1])
    await attempt(
      'table: insert returning',
      async () => {
        const x = await c.query('INSERT INTO items (id, name) VALUES ($1, $2) RETURNING id, name, qty', [6, 'quince'])
        return [x.command, x.rowCount, x.rows]
      },
      ['INSERT', 1, [{ id: 6, name: 'quince', qty: null }]]
    )
    await c.query('DELETE FROM items WHERE id = $1', [6])
    r = await c.query('SELECT * FROM items WHERE id = $1', ['1']) // '1' typed int4 by the column
    check('table: field names', r.fields.map((f) => f.name), ['id', 'name', 'qty', 'price', 'ok', 'born', 'at', 'doc', 'raw'])
    check('table: field OIDs', r.fields.map((f) => f.dataTypeID), [23, 25, 20, 1700, 16, 1082, 1184, 3802, 17])
    const row = r.rows[0] || {}
    check('table: int', row.id, 1)
    check('table: text', row.name, 'apple')
    check('table: bigint', row.qty, '10000000000')
    check('table: numeric', row.price, '1.25')
    check('table: bool', row.ok, true)
    check('table: date', row.born instanceof Date ? [row.born.getFullYear(), row.born.getMonth(), row.born.getDate()] : row.born, [2020, 0, 31])
    check('table: timestamptz', row.at instanceof Date ? row.at.getTime() : row.at, when.getTime())
    check('table: jsonb', row.doc, doc)
    check('table: bytea', row.raw, raw)
    r = await c.query('SELECT id, qty, price, doc FROM items WHERE id = $1', [2])
    check('table: nulls', r.rows, [{ id: 2, qty: null, price: null, doc: null }])
    r = await c.query('SELECT count(*) AS n, sum(price) AS total, max(qty) AS big FROM items')
    check('table: aggregates', r.rows, [{ n: '2', total: '1.25', big: '10000000000' }])
    check('table: aggregate OIDs', r.fields.map((f) => f.dataTypeID), [20, 1700, 20])
    await attempt(
      'table: jsonb and date in WHERE',
      async () => (await c.query("SELECT name FROM items WHERE doc ->> 'n' = $1 AND born < $2", ['2', '2021-01-01'])).rows,
      [{ name: 'apple' }]
    )
  })
}

async function simpleProtocol(config) {
  await withClient(config, async (c) => {
    let r = await c.query('SELECT id, name FROM items ORDER BY id')
    check('simple: rows', r.rows, [{ id: 1, name: 'apple' }, { id: 2, name: 'pear' }])
    check('simple: fields', r.fields.map((f) => [f.name, f.dataTypeID]), [['id', 23], ['name', 25]])
    check('simple: select command', [r.command, r.rowCount], ['SELECT', 2])
    r = await c.query('SELECT 1 AS i, 1 + 1 AS j')
    check('simple: integer literals are int4', [r.rows, r.fields.map((f) => f.dataTypeID)], [[{ i: 1, j: 2 }], [23, 23]])
    r = await c.query("SELECT 1::int8 AS big, 2.5::numeric AS num, true AS t, 'x'::text AS s, now() IS NOT NULL AS n")
    check('simple: literal types', r.rows, [{ big: '1', num: '2.5', t: true, s: 'x', n: true }])
    check('simple: literal OIDs', r.fields.map((f) => f.dataTypeID), [20, 1700, 16, 25, 16])
    const results = await c.query('SELECT 1 AS a; SELECT 2 AS b, 3 AS c')
    check('simple: multi-statement gives an array', Array.isArray(results) ? results.length : show(results), 2)
    if (Array.isArray(results)) {
      check('simple: multi-statement rows', results.map((x) => x.rows), [[{ a: 1 }], [{ b: 2, c: 3 }]])
    }
    const mixed = await c.query(
      "INSERT INTO items (id, name) VALUES (3, 'fig'), (4, 'kiwi'); UPDATE items SET qty = 7 WHERE id >= 3; SELECT count(*) AS n FROM items"
    )
    check(
      'simple: multi-statement commands',
      Array.isArray(mixed) ? mixed.map((x) => [x.command, x.rowCount]) : show(mixed),
      [['INSERT', 2], ['UPDATE', 2], ['SELECT', 1]]
    )
    if (Array.isArray(mixed)) check('simple: multi-statement last rows', mixed[2].rows, [{ n: '4' }])
    r = await c.query("DELETE FROM items WHERE id IN (3, 4)")
    check('simple: delete', [r.command, r.rowCount], ['DELETE', 2])
    r = await c.query({ text: 'SELECT id, name FROM items ORDER BY id', rowMode: 'array' })
    check('simple: rowMode array', r.rows, [[1, 'apple'], [2, 'pear']])
  })
}

async function extendedProtocol(config) {
  await withClient(config, async (c) => {
    const byId = { name: 'item_by_id', text: 'SELECT id, name, price FROM items WHERE id = $1' }
    let r = await c.query({ ...byId, values: [1] })
    check('prepared: first use', r.rows, [{ id: 1, name: 'apple', price: '1.25' }])
    check('prepared: fields', r.fields.map((f) => [f.name, f.dataTypeID]), [['id', 23], ['name', 25], ['price', 1700]])
    r = await c.query({ ...byId, values: [2] })
    check('prepared: reused', r.rows, [{ id: 2, name: 'pear', price: null }])
    r = await c.query({ ...byId, values: [99] })
    check('prepared: reused, no rows', [r.rows, r.rowCount, r.fields.length], [[], 0, 3])
    r = await c.query({ ...byId, values: [1], rowMode: 'array' })
    check('prepared: rowMode array', r.rows, [[1, 'apple', '1.25']])
    const ins = { name: 'item_insert', text: 'INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)' }
    for (const [id, name] of [[10, 'a'], [11, 'b'], [12, 'c']]) {
      r = await c.query({ ...ins, values: [id, name, id * 100] })
    }
    check('prepared: insert reused', [r.command, r.rowCount], ['INSERT', 1])
    const upd = { name: 'item_update', text: 'UPDATE items SET qty = qty + $1 WHERE id >= $2' }
    r = await c.query({ ...upd, values: [1, 10] })
    check('prepared: update', [r.command, r.rowCount], ['UPDATE', 3])
    r = await c.query({ ...upd, values: [1, 12] })
    check('prepared: update reused', [r.command, r.rowCount], ['UPDATE', 1])
    r = await c.query({ ...upd, values: [1, 1000] })
    check('prepared: update nothing', [r.command, r.rowCount], ['UPDATE', 0])
    r = await c.query('SELECT id, qty FROM items WHERE id >= $1 ORDER BY id', [10])
    check('extended: after updates', r.rows, [{ id: 10, qty: '1001' }, { id: 11, qty: '1101' }, { id: 12, qty: '1202' }])
    r = await c.query({ text: 'SELECT id, qty FROM items WHERE id >= $1 ORDER BY id', values: [11], rowMode: 'array' })
    check('extended: rowMode array', r.rows, [[11, '1101'], [12, '1202']])
    r = await c.query('DELETE FROM items WHERE id >= $1', [10])
    check('extended: delete', [r.command, r.rowCount], ['DELETE', 3])
    r = await c.query('DELETE FROM items WHERE id >= $1', [10])
    check('extended: delete nothing', [r.command, r.rowCount], ['DELETE', 0])
    r = await c.query({ ...byId, values: [1] })
    check('prepared: still there after other statements', r.rows.map((x) => x.name), ['apple'])
  })
}

async function transactions(config) {
  const other = await connect(config)
  const c = await connect(config)
  const names = async () => (await other.query('SELECT id FROM pooled ORDER BY id')).rows.map((x) => x.id)
  let r = await c.query('BEGIN')
  check('tx: begin command', r.command, 'BEGIN')
  await c.query('INSERT INTO pooled VALUES ($1, $2)', [1, 'tx'])
  check('tx: own write visible', (await c.query('SELECT count(*) AS n FROM pooled')).rows, [{ n: '1' }])
  check('tx: not visible to others', await names(), [])
  r = await c.query('COMMIT')
  check('tx: commit command', r.command, 'COMMIT')
  check('tx: committed', await names(), [1])

  await c.query('BEGIN')
  await c.query('INSERT INTO pooled VALUES ($1, $2)', [2, 'gone'])
  await c.query('DELETE FROM pooled WHERE id = $1', [1])
  r = await c.query('ROLLBACK')
  check('tx: rollback command', r.command, 'ROLLBACK')
  check('tx: rollback undid the writes', await names(), [1])

  await c.query('BEGIN')
  await c.query('INSERT INTO pooled VALUES (3, $1)', ['kept'])
  r = await c.query('SAVEPOINT s1')
  check('tx: savepoint command', r.command, 'SAVEPOINT')
  await c.query('INSERT INTO pooled VALUES (4, $1)', ['undone'])
  r = await c.query('ROLLBACK TO SAVEPOINT s1')
  check('tx: rollback to command', r.command, 'ROLLBACK')
  await c.query('INSERT INTO pooled VALUES (5, $1)', ['after'])
  r = await c.query('RELEASE SAVEPOINT s1')
  check('tx: release command', r.command, 'RELEASE')
  check('tx: inside after rollback to', (await c.query('SELECT id FROM pooled ORDER BY id')).rows.map((x) => x.id), [1, 3, 5])
  await c.query('COMMIT')
  check('tx: savepoint result', await names(), [1, 3, 5])

  // An error after a savepoint, recovered with ROLLBACK TO.
  await c.query('BEGIN')
  await c.query('SAVEPOINT s2')
  await expectCode('tx: error after savepoint', () => c.query('INSERT INTO pooled VALUES ($1, $2)', [1, 'dup']), '23505')
  await c.query('ROLLBACK TO SAVEPOINT s2')
  await c.query('INSERT INTO pooled VALUES ($1, $2)', [6, 'recovered'])
  await c.query('COMMIT')
  check('tx: recovered by rollback to', await names(), [1, 3, 5, 6])

  // An error aborts the block until ROLLBACK.
  await c.query('BEGIN')
  await c.query('INSERT INTO pooled VALUES ($1, $2)', [7, 'lost'])
  await expectCode('tx: error inside', () => c.query('INSERT INTO pooled VALUES ($1, $2)', [1, 'dup']), '23505')
  await expectCode('tx: aborted block refuses statements', () => c.query('SELECT 1'), '25P02')
  await expectCode('tx: aborted block refuses extended statements', () => c.query('SELECT $1::int', [1]), '25P02')
  r = await c.query('ROLLBACK')
  check('tx: rollback of the aborted block', r.command, 'ROLLBACK')
  check('tx: usable after rollback', (await c.query('SELECT $1::int AS x', [1])).rows, [{ x: 1 }])
  check('tx: aborted write gone', await names(), [1, 3, 5, 6])

  // COMMIT of an aborted block rolls back: pg reports command ROLLBACK.
  await c.query('BEGIN')
  await c.query('INSERT INTO pooled VALUES ($1, $2)', [8, 'lost'])
  await expectCode('tx: error before commit', () => c.query('SELECT * FROM no_such_table'), '42P01')
  r = await c.query('COMMIT')
  check('tx: commit of an aborted block', r.command, 'ROLLBACK')
  check('tx: nothing committed', await names(), [1, 3, 5, 6])
  await c.query('DELETE FROM pooled')
  await close(c)
  await close(other)
}

async function errors(config) {
  await withClient(config, async (c) => {
    const alive = async (name) => check(name, (await c.query("SELECT 'yes'::text AS ok")).rows, [{ ok: 'yes' }])
    const e = await expectCode('error: 23505 unique', () => c.query('INSERT INTO items (id, name) VALUES ($1, $2)', [1, 'again']), '23505')
    check('error: 23505 severity', e && e.severity, 'ERROR')
    await alive('error: usable after 23505')
    await expectCode('error: 23505 simple', () => c.query("INSERT INTO items (id, name) VALUES (1, 'again')"), '23505')
    await alive('error: usable after simple 23505')
    await expectCode('error: 42P01 simple', () => c.query('SELECT * FROM no_such_table'), '42P01')
    await alive('error: usable after 42P01')
    await expectCode('error: 42P01 extended', () => c.query('SELECT * FROM no_such_table WHERE id = $1', [1]), '42P01')
    await alive('error: usable after extended 42P01')
    await expectCode('error: 22012 simple', () => c.query('SELECT 1 / 0'), '22012')
    await alive('error: usable after 22012')
    await expectCode('error: 22012 extended', () => c.query('SELECT $1::int / $2::int', [1, 0]), '22012')
    await alive('error: usable after extended 22012')
    await expectCode('error: 42601 simple', () => c.query('SELEC 1'), '42601')
    await alive('error: usable after 42601')
    await expectCode('error: 42601 extended', () => c.query('SELEC $1', [1]), '42601')
    await alive('error: usable after extended 42601')
    await expectCode('error: 42601 named', () => c.query({ name: 'bad_one', text: 'SELEC $1', values: [1] }), '42601')
    await alive('error: usable after named 42601')
    await expectCode('error: 22P02 bad int parameter', () => c.query('SELECT $1::int', ['abc']), '22P02')
    await alive('error: usable after 22P02')
    // An error in a multi-statement string: the statements before it ran.
    await expectCode(
      'error: multi-statement stops at the error',
      () => c.query("INSERT INTO pooled VALUES (50, 'first'); SELECT 1 / 0; INSERT INTO pooled VALUES (51, 'never')"),
      '22012'
    )
    check('error: multi-statement effects', (await c.query('SELECT id FROM pooled ORDER BY id')).rows, [])
    await c.query('DELETE FROM pooled')
    await alive('error: usable at the end')
  })
}

async function cursors(config) {
  await withClient(config, async (c) => {
    await c.query('BEGIN')
    const cursor = c.query(new Cursor('SELECT id, name FROM cur WHERE id > $1 ORDER BY id', [0]))
    const batches = []
    for (let i = 0; i < 5; i++) batches.push((await cursor.read(10)).map((x) => x.id))
    const upto = (a, b) => Array.from({ length: b - a + 1 }, (_, k) => a + k)
    check('cursor: batches of 10', batches, [upto(1, 10), upto(11, 20), upto(21, 25), [], []])
    await cursor.close()
    check('cursor: query after close', (await c.query('SELECT count(*) AS n FROM cur')).rows, [{ n: String(N) }])

    const first = c.query(new Cursor('SELECT id, name FROM cur ORDER BY id'))
    check('cursor: first row', await first.read(1), [{ id: 1, name: 'n1' }])
    check('cursor: next rows', (await first.read(3)).map((x) => x.id), [2, 3, 4])
    await first.close() // closed before the end
    const arr = c.query(new Cursor('SELECT id, name FROM cur WHERE id <= $1 ORDER BY id', [3], { rowMode: 'array' }))
    check('cursor: rowMode array', await arr.read(100), [[1, 'n1'], [2, 'n2'], [3, 'n3']])
    check('cursor: read after the end', await arr.read(100), [])
    await arr.close()
    const empty = c.query(new Cursor('SELECT id FROM cur WHERE id < 0'))
    check('cursor: no rows', await empty.read(5), [])
    await empty.close()
    let r = await c.query('COMMIT')
    check('cursor: commit after cursors', r.command, 'COMMIT')

    // Outside a transaction block: pg-cursor sends no Sync until close.
    const loose = c.query(new Cursor('SELECT id FROM cur ORDER BY id DESC'))
    check('cursor: outside a transaction', (await loose.read(2)).map((x) => x.id), [N, N - 1])
    check('cursor: outside a transaction, more', (await loose.read(2)).map((x) => x.id), [N - 2, N - 3])
    await loose.close()

    await c.query('BEGIN')
    const bad = c.query(new Cursor('SELECT * FROM no_such_table'))
    await expectCode('cursor: error', () => bad.read(5), '42P01')
    await c.query('ROLLBACK')
    check('cursor: usable after a cursor error', (await c.query("SELECT 'yes'::text AS ok")).rows, [{ ok: 'yes' }])
  })
}

async function views(config) {
  await withClient(config, async (c) => {
    let r = await c.query("CREATE VIEW item_names AS SELECT id, upper(name) AS shout FROM items WHERE name <> 'pear'")
    check('view: create command', r.command, 'CREATE')
    r = await c.query('SELECT * FROM item_names ORDER BY id')
    check('view: rows', r.rows, [{ id: 1, shout: 'APPLE' }])
    check('view: fields', r.fields.map((f) => [f.name, f.dataTypeID]), [['id', 23], ['shout', 25]])
    await c.query('INSERT INTO items (id, name) VALUES ($1, $2)', [5, 'plum'])
    r = await c.query('SELECT shout FROM item_names WHERE id = $1', [5])
    check('view: follows a later insert', r.rows, [{ shout: 'PLUM' }])
    await c.query('DELETE FROM items WHERE id = $1', [5])
  })
}

async function materializedView(config) {
  await withClient(config, async (c) => {
    const version = (await c.query('SELECT version() AS v')).rows[0].v
    const freshet = /freshet/i.test(version)
    console.log(`# server: ${version}; making the view current with ${freshet ? 'FLUSH' : 'REFRESH MATERIALIZED VIEW'}`)
    const makeCurrent = () => c.query(freshet ? 'FLUSH' : 'REFRESH MATERIALIZED VIEW region_totals')
    const add = { name: 'sale_insert', text: 'INSERT INTO sales VALUES ($1, $2, $3)' }
    await c.query({ ...add, values: [1, 'east', '10.00'] })
    await c.query({ ...add, values: [2, 'west', '2.50'] })
    let r = await c.query(
      'CREATE MATERIALIZED VIEW region_totals AS SELECT region, count(*) AS n, sum(amount) AS total FROM sales GROUP BY region'
    )
    // PostgreSQL tags CREATE MATERIALIZED VIEW as SELECT n, n the rows in it.
    check('matview: create command', [r.command, r.rowCount], ['SELECT', 2])
    const read = 'SELECT region, n, total FROM region_totals ORDER BY region'
    r = await c.query(read)
    check('matview: rows after create', r.rows, [{ region: 'east', n: '1', total: '10.00' }, { region: 'west', n: '1', total: '2.50' }])
    check('matview: fields', r.fields.map((f) => [f.name, f.dataTypeID]), [['region', 25], ['n', 20], ['total', 1700]])
    await c.query('BEGIN')
    await c.query({ ...add, values: [3, 'east', '0.75'] })
    await c.query({ ...add, values: [4, 'north', '5.00'] })
    await c.query('COMMIT')
    await c.query('BEGIN')
    await c.query({ ...add, values: [5, 'west', '1000.00'] })
    await c.query('ROLLBACK')
    await c.query('UPDATE sales SET amount = amount * 2 WHERE id = $1', [2])
    await makeCurrent()
    const expected = [
      { region: 'east', n: '2', total: '10.75' },
      { region: 'north', n: '1', total: '5.00' },
      { region: 'west', n: '1', total: '5.00' },
    ]
    check('matview: rows after new writes', (await c.query(read)).rows, expected)
    r = await c.query('SELECT n, total FROM region_totals WHERE region = $1', ['east'])
    check('matview: read with a parameter', r.rows, [{ n: '2', total: '10.75' }])
    r = await c.query({ text: 'SELECT region, total FROM region_totals WHERE n = $1 ORDER BY region', values: [1], rowMode: 'array' })
    check('matview: rowMode array', r.rows, [['north', '5.00'], ['west', '5.00']])
    await c.query('BEGIN')
    const cursor = c.query(new Cursor(read))
    check('matview: through a cursor', (await cursor.read(2)).map((x) => x.region), ['east', 'north'])
    await cursor.close()
    await c.query('COMMIT')
    await c.query('DELETE FROM sales WHERE region = $1', ['north'])
    await makeCurrent()
    check('matview: after a delete', (await c.query(read)).rows.map((x) => x.region), ['east', 'west'])
  })
}

async function poolConcurrency(config) {
  const p = pool({ ...config, max: 4 })
  const ids = Array.from({ length: 12 }, (_, i) => i + 1)
  const results = await Promise.all(ids.map((i) => p.query('SELECT $1::int AS i, $2::text AS s', [i, `s${i}`])))
  check('pool: concurrent selects', results.map((r) => r.rows[0]), ids.map((i) => ({ i, s: `s${i}` })))
  check('pool: at most max clients', p.totalCount <= 4, true)
  const inserts = await Promise.all(ids.map((i) => p.query('INSERT INTO pooled VALUES ($1, $2)', [i, `w${i % 4}`])))
  check('pool: concurrent inserts', inserts.map((r) => r.rowCount), ids.map(() => 1))
  check('pool: inserted rows', (await p.query('SELECT count(*) AS n FROM pooled')).rows, [{ n: '12' }])
  // Concurrent transactions on clients checked out of the pool.
  const tx = async (k) => {
    const client = await p.connect()
    try {
      await client.query('BEGIN')
      const r = await client.query('UPDATE pooled SET who = $1 WHERE id % 4 = $2', [`t${k}`, k])
      await client.query(k === 3 ? 'ROLLBACK' : 'COMMIT')
      return r.rowCount
    } finally {
      client.release()
    }
  }
  check('pool: concurrent transactions', await Promise.all([0, 1, 2, 3].map(tx)), [3, 3, 3, 3])
  const r = await p.query('SELECT who, count(*) AS n FROM pooled GROUP BY who ORDER BY who')
  check('pool: transaction results', r.rows, [{ who: 't0', n: '3' }, { who: 't1', n: '3' }, { who: 't2', n: '3' }, { who: 'w3', n: '3' }])
  const named = await Promise.all(ids.map((i) => p.query({ name: 'pool_named', text: 'SELECT id FROM pooled WHERE id = $1', values: [i] })))
  check('pool: named statement on every client', named.map((x) => x.rows[0] && x.rows[0].id), ids)
  await expectCode('pool: error on a pooled query', () => p.query('SELECT * FROM no_such_table'), '42P01')
  check('pool: usable after an error', (await p.query("SELECT 'yes'::text AS ok")).rows, [{ ok: 'yes' }])
  await close(p)
}

async function teardown(config) {
  await withClient(config, async (c) => {
    let r = await c.query('DROP MATERIALIZED VIEW region_totals')
    check('ddl: drop materialized view command', r.command, 'DROP')
    r = await c.query('DROP VIEW item_names')
    check('ddl: drop view command', r.command, 'DROP')
    for (const t of ['items', 'cur', 'sales', 'pooled']) await c.query(`DROP TABLE ${t}`)
    await expectCode('ddl: dropped table is gone', () => c.query('SELECT * FROM items'), '42P01')
  })
}

run([
  connecting, setup, parameters, tableTypes, simpleProtocol, extendedProtocol, transactions,
  errors, cursors, views, materializedView, poolConcurrency, teardown,
])
