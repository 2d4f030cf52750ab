/*
 * pgJDBC (Debian's libpostgresql-jdbc-java, 42.5) against a Freshet server:
 *
 *     java -cp /usr/share/java/postgresql.jar tests/jdbc/JdbcSmoke.java HOST PORT [USER [DBNAME [SCHEMA]]]
 *
 * Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
 * each that does not; a section that throws is reported and the next one
 * runs. Ends with "ALL OK" and exit status 0, or "FAILED n" and exit status 1
 * (the conventions of tests/python/harness.py). USER defaults to "test" and
 * DBNAME to "freshet".
 *
 * Every expectation is what pgJDBC gives against PostgreSQL 15. To check
 * that, run it against one in a scratch schema, which the program creates
 * (dropping any left from an earlier run), works in through the
 * `currentSchema=` URL property, and drops at the end:
 *
 *     java -cp /usr/share/java/postgresql.jar tests/jdbc/JdbcSmoke.java 127.0.0.1 5432 postgres test jdbc_scratch
 *
 * Without SCHEMA the sections work in the connection's current_schema() and
 * the last section drops what they created.
 *
 * The JVM's default time zone is set to UTC (pgJDBC sends it as TimeZone at
 * startup and converts java.sql.Date/Timestamp with it), except in the
 * time_zones section, which connects from Asia/Kolkata.
 *
 * Covered: DriverManager connect (pgJDBC's startup parameters DateStyle,
 * extra_float_digits, TimeZone, client_encoding, search_path) and isValid
 * (an empty query, what connection pools send); Statement.execute and
 * executeUpdate of DDL; PreparedStatement inserts with setInt, setLong,
 * setBigDecimal, setString, setBoolean, setDate, setTimestamp,
 * setObject(OffsetDateTime), setNull, jsonb through setObject(..,
 * Types.OTHER) and `?::jsonb`; executeUpdate counts; generated keys
 * (RETURNING); batches (PreparedStatement and Statement, a failing batch
 * rolled back whole, reWriteBatchedInserts); ResultSet getters (typed,
 * getObject classes, getObject(i, Class) for java.time) and
 * ResultSetMetaData (names, getColumnType, getColumnTypeName for int4,
 * int8, numeric, text, bool, date, timestamptz, jsonb, precision and scale,
 * isNullable, table name: the last two make pgJDBC query pg_attribute /
 * pg_class for the RowDescription's table oids); a PreparedStatement run
 * more than prepareThreshold (5) times, so that pgJDBC switches to a named
 * server-side statement with binary results; autocommit off: commit,
 * rollback, an error leaving the block failed (25P02), setAutoCommit(true)
 * committing; Savepoint set/rollback/release (named ones are sent quoted),
 * autosave=always; setFetchSize(n) with autocommit off (Execute with a row
 * limit, PortalSuspended, two portals read in turn), setMaxRows; errors'
 * getSQLState (23505 with DETAIL, 42P01, 22012, 42601 with position) in
 * both protocols, the connection usable after each; a session in
 * Asia/Kolkata (setDate/setTimestamp sent with a +05:30 offset);
 * DatabaseMetaData: product name/version, getSchemas, getCatalogs,
 * getTables for TABLE / VIEW / MATERIALIZED VIEW, getColumns, getPrimaryKeys
 * (also a two-column key), getImportedKeys; a view; a materialized view.
 *
 * The materialized view: Freshet's follow their tables and FLUSH makes them
 * current; PostgreSQL's need REFRESH MATERIALIZED VIEW and it has no FLUSH.
 * The materialized_view section sends FLUSH first: when that fails with a
 * syntax error (42601) the server is PostgreSQL, and the section makes the
 * view current with REFRESH MATERIALIZED VIEW where it would send FLUSH.
 * Everything else (CREATE MATERIALIZED VIEW, the reads, the expectations)
 * is the same on both.
 */

import java.math.BigDecimal;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.TimeZone;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.postgresql.PGStatement;
import org.postgresql.util.PSQLException;

public class JdbcSmoke {
    static final List<String> FAILURES = new ArrayList<>();
    static String url;
    static String user;
    static String dbname;
    static Properties props = new Properties();
    /** The schema the sections work in: SCHEMA, or the connection's current_schema(). */
    static String schema;

    interface Section {
        void run() throws Exception;
    }

    // ---- the harness ------------------------------------------------------

    static String repr(Object o) {
        if (o == null) return "null";
        if (o instanceof String) return "\"" + o + "\"";
        if (o instanceof List) {
            return ((List<?>) o).stream().map(JdbcSmoke::repr).collect(Collectors.joining(", ", "[", "]"));
        }
        return o + " (" + o.getClass().getSimpleName() + ")";
    }

    static void check(String name, Object actual, Object expected) {
        if (java.util.Objects.equals(actual, expected)) {
            System.out.println("ok " + name);
        } else {
            fail(name, "expected " + repr(expected) + ", got " + repr(actual));
        }
    }

    interface Value {
        Object get() throws Exception;
    }

    /** Like check, with the actual value computed by `actual`: if that throws, the check fails with the exception. */
    static void checkCall(String name, Value actual, Object expected) {
        Object got;
        try {
            got = actual.get();
        } catch (Exception e) {
            fail(name, "raised " + (e instanceof SQLException ? describe((SQLException) e) : e.toString()));
            return;
        }
        check(name, got, expected);
    }

    interface ColumnFn {
        Object apply(int column) throws SQLException;
    }

    /** `f` of every column of `md`. */
    static List<Object> eachColumn(ResultSetMetaData md, ColumnFn f) throws SQLException {
        List<Object> out = new ArrayList<>();
        for (int i = 1; i <= md.getColumnCount(); i++) out.add(f.apply(i));
        return out;
    }

    static void fail(String name, String why) {
        FAILURES.add(name);
        System.out.println("FAIL " + name + ": " + why);
    }

    static String describe(SQLException e) {
        return e.getClass().getSimpleName() + " (sqlstate " + e.getSQLState() + "): " + e.getMessage();
    }

    /** Runs `sql` on `c`: it must fail with `sqlstate`. */
    static void expectSqlState(String name, Connection c, String sql, String sqlstate) {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        } catch (SQLException e) {
            check(name, e.getSQLState(), sqlstate);
            return;
        }
        fail(name, "no error");
    }

    static Connection connect() throws SQLException {
        return DriverManager.getConnection(url, props);
    }

    static Connection connect(String key, String value) throws SQLException {
        Properties p = new Properties();
        p.putAll(props);
        p.setProperty(key, value);
        return DriverManager.getConnection(url, p);
    }

    /** The first column of the first row of `sql`'s result. */
    static Object one(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            if (!rs.next()) return "<no rows>";
            return rs.getObject(1);
        }
    }

    /** The first column of every row of `sql`'s result. */
    static List<Object> column(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return column(rs, 1);
        }
    }

    static List<Object> column(ResultSet rs, Object col) throws SQLException {
        List<Object> out = new ArrayList<>();
        while (rs.next()) out.add(col instanceof Integer ? rs.getObject((Integer) col) : rs.getObject((String) col));
        return out;
    }

    /** Every row of `rs`, each as its columns' getString joined by " ". */
    static List<Object> rows(ResultSet rs) throws SQLException {
        List<Object> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            StringBuilder b = new StringBuilder();
            for (int i = 1; i <= n; i++) {
                if (i > 1) b.append(' ');
                b.append(rs.getString(i));
            }
            out.add(b.toString());
        }
        return out;
    }

    static List<Object> rows(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return rows(rs);
        }
    }

    static List<Object> ints(int... xs) {
        return Arrays.stream(xs).boxed().collect(Collectors.toList());
    }

    static List<Object> range(int from, int to) {
        return IntStream.rangeClosed(from, to).boxed().collect(Collectors.toList());
    }

    static void execute(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        }
    }

    static void usable(String name, Connection c) throws SQLException {
        checkCall(name, () -> {
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                return rs.getInt(1);
            }
        }, 1);
    }

    // ---- the sections -----------------------------------------------------

    static void startup() throws Exception {
        try (Connection c = connect()) {
            check("startup: isValid", c.isValid(5), true);
            check("startup: autocommit on", c.getAutoCommit(), true);
            check("startup: product name", c.getMetaData().getDatabaseProductName(), "PostgreSQL");
            check("startup: DateStyle", one(c, "SHOW DateStyle"), "ISO, MDY");
            check("startup: extra_float_digits", one(c, "SHOW extra_float_digits"), "3");
            check("startup: client_encoding", one(c, "SHOW client_encoding"), "UTF8");
            check("startup: TimeZone", one(c, "SHOW TimeZone"), "UTC");
            check("startup: current_schema", one(c, "SELECT current_schema()"), schema);
            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("SELECT 0.1::float8, 1::int4, 'x'::text, NULL::int4")) {
                rs.next();
                check("startup: float8 getDouble", rs.getDouble(1), 0.1);
                check("startup: float8 getString", rs.getString(1), "0.1");
                check("startup: int4 getObject", rs.getObject(2), 1);
                check("startup: text getString", rs.getString(3), "x");
                check("startup: null getObject", rs.getObject(4), null);
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                check("startup: integer literal getObject", rs.getObject(1), 1);
                check("startup: one row", rs.next(), false);
            }
            check("startup: isValid after queries", c.isValid(5), true);
        }
    }

    static void ddl() throws Exception {
        try (Connection c = connect(); Statement st = c.createStatement()) {
            check("ddl: execute returns false",
                  st.execute("CREATE TABLE items (id int PRIMARY KEY, big bigint, price numeric(10,2), "
                             + "name text NOT NULL, active boolean, born date, seen timestamptz, doc jsonb)"),
                  false);
            check("ddl: update count after execute", st.getUpdateCount(), 0);
            check("ddl: executeUpdate",
                  st.executeUpdate("CREATE TABLE ledger (id int PRIMARY KEY, owner text NOT NULL, amount numeric(10,2))"),
                  0);
            st.execute("CREATE TABLE seq (n int PRIMARY KEY, label text)");
            st.execute("CREATE TABLE batched (id int PRIMARY KEY, label text)");
            st.execute("CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (b, a))");
            st.execute("CREATE TABLE tz_t (id int PRIMARY KEY, d date, ts timestamptz, lts timestamp)");
            try (ResultSet rs = st.executeQuery("SELECT * FROM items")) {
                check("ddl: new table is empty", rs.next(), false);
                check("ddl: new table's columns", rs.getMetaData().getColumnCount(), 8);
            }
        }
    }

    static final String INSERT_ITEM =
        "INSERT INTO items (id, big, price, name, active, born, seen, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

    static void preparedInserts() throws Exception {
        try (Connection c = connect()) {
            try (PreparedStatement ps = c.prepareStatement(INSERT_ITEM)) {
                ps.setInt(1, 1);
                ps.setLong(2, 9000000000L);
                ps.setBigDecimal(3, new BigDecimal("12.50"));
                ps.setString(4, "first");
                ps.setBoolean(5, true);
                ps.setDate(6, Date.valueOf("2024-02-29"));
                ps.setTimestamp(7, Timestamp.from(Instant.parse("2024-05-01T12:30:15.250Z")));
                ps.setObject(8, "{\"b\": 1, \"a\": [1, 2.50]}", Types.OTHER);
                check("insert: row 1 (setObject jsonb as OTHER)", ps.executeUpdate(), 1);

                ps.setInt(1, 3);
                ps.setNull(2, Types.BIGINT);
                ps.setNull(3, Types.NUMERIC);
                ps.setString(4, "third");
                ps.setNull(5, Types.BOOLEAN);
                ps.setNull(6, Types.DATE);
                ps.setNull(7, Types.TIMESTAMP);
                ps.setNull(8, Types.OTHER);
                check("insert: row 3 (setNull)", ps.executeUpdate(), 1);
            }
            try (PreparedStatement ps = c.prepareStatement(INSERT_ITEM.replace("?)", "?::jsonb)"))) {
                ps.setInt(1, 2);
                ps.setLong(2, -1L);
                ps.setBigDecimal(3, new BigDecimal("-0.05"));
                ps.setString(4, "second");
                ps.setBoolean(5, false);
                ps.setDate(6, Date.valueOf("1999-12-31"));
                ps.setObject(7, OffsetDateTime.of(2023, 12, 31, 23, 59, 59, 0, ZoneOffset.ofHours(-5)));
                ps.setString(8, "[\"x\", null, {\"k\": true}]");
                check("insert: row 2 (?::jsonb, OffsetDateTime)", ps.executeUpdate(), 1);
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO seq (n, label) VALUES (?, ?)")) {
                int total = 0;
                for (int n = 1; n <= 100; n++) {
                    ps.setInt(1, n);
                    ps.setString(2, "L" + n);
                    total += ps.executeUpdate();
                }
                check("insert: 100 executions of one statement", total, 100);
                check("insert: statement became server-prepared",
                      ps.unwrap(PGStatement.class).isUseServerPrepare(), true);
            }
            check("insert: rows in seq", one(c, "SELECT count(*) FROM seq"), 100L);
            try (PreparedStatement ps = c.prepareStatement("UPDATE items SET name = name WHERE id <= ?")) {
                ps.setInt(1, 2);
                check("update: executeUpdate count", ps.executeUpdate(), 2);
            }
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM items WHERE id > ?")) {
                ps.setInt(1, 100);
                check("delete: executeUpdate count of nothing", ps.executeUpdate(), 0);
            }
            try (Statement st = c.createStatement()) {
                check("update: Statement.executeUpdate count",
                      st.executeUpdate("UPDATE seq SET label = label WHERE n > 90"), 10);
                check("insert: Statement.execute returns false",
                      st.execute("INSERT INTO pairs (a, b, v) VALUES (0, 'z', 0)"), false);
                check("insert: Statement.getUpdateCount", st.getUpdateCount(), 1);
            }
            checkCall("generated keys: named columns", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                         "INSERT INTO pairs (a, b, v) VALUES (?, ?, ?)", new String[] {"a", "b"})) {
                    ps.setInt(1, 1);
                    ps.setString(2, "x");
                    ps.setInt(3, 10);
                    int count = ps.executeUpdate();
                    try (ResultSet keys = ps.getGeneratedKeys()) {
                        return List.of(count, rows(keys));
                    }
                }
            }, List.of(1, List.of("1 x")));
            checkCall("generated keys: RETURN_GENERATED_KEYS", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                         "INSERT INTO pairs (a, b, v) VALUES (?, ?, ?)", Statement.RETURN_GENERATED_KEYS)) {
                    ps.setInt(1, 2);
                    ps.setString(2, "x");
                    ps.setInt(3, 20);
                    int count = ps.executeUpdate();
                    try (ResultSet keys = ps.getGeneratedKeys()) {
                        return List.of(count, rows(keys));
                    }
                }
            }, List.of(1, List.of("2 x 20")));
        }
    }

    static final String SELECT_ITEMS = "SELECT id, big, price, name, active, born, seen, doc FROM items";

    static void resultSet() throws Exception {
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(SELECT_ITEMS + " ORDER BY id")) {
            ResultSetMetaData md = rs.getMetaData();
            checkCall("metadata: column names", () -> eachColumn(md, md::getColumnName),
                      List.of("id", "big", "price", "name", "active", "born", "seen", "doc"));
            checkCall("metadata: getColumnType", () -> eachColumn(md, md::getColumnType),
                      ints(Types.INTEGER, Types.BIGINT, Types.NUMERIC, Types.VARCHAR, Types.BIT, Types.DATE,
                           Types.TIMESTAMP, Types.OTHER));
            checkCall("metadata: getColumnTypeName", () -> eachColumn(md, md::getColumnTypeName),
                      List.of("int4", "int8", "numeric", "text", "bool", "date", "timestamptz", "jsonb"));
            checkCall("metadata: getColumnClassName", () -> eachColumn(md, md::getColumnClassName),
                      List.of("java.lang.Integer", "java.lang.Long", "java.math.BigDecimal", "java.lang.String",
                              "java.lang.Boolean", "java.sql.Date", "java.sql.Timestamp", "java.lang.String"));
            checkCall("metadata: numeric precision and scale", () -> List.of(md.getPrecision(3), md.getScale(3)),
                      ints(10, 2));
            checkCall("metadata: isNullable", () -> eachColumn(md, md::isNullable),
                      ints(ResultSetMetaData.columnNoNulls, ResultSetMetaData.columnNullable,
                           ResultSetMetaData.columnNullable, ResultSetMetaData.columnNoNulls,
                           ResultSetMetaData.columnNullable, ResultSetMetaData.columnNullable,
                           ResultSetMetaData.columnNullable, ResultSetMetaData.columnNullable));
            checkCall("metadata: getTableName", () -> md.getTableName(1), "items");
            check("metadata: findColumn ignores case", rs.findColumn("DOC"), 8);

            check("getters: row 1", rs.next(), true);
            check("getters: getInt", rs.getInt("id"), 1);
            check("getters: getLong", rs.getLong("big"), 9000000000L);
            check("getters: getBigDecimal", rs.getBigDecimal("price"), new BigDecimal("12.50"));
            check("getters: numeric getString", rs.getString("price"), "12.50");
            check("getters: getString", rs.getString("name"), "first");
            check("getters: getBoolean", rs.getBoolean("active"), true);
            check("getters: bool getString", rs.getString("active"), "t");
            check("getters: getDate", rs.getDate("born"), Date.valueOf("2024-02-29"));
            check("getters: date getObject(LocalDate)", rs.getObject("born", LocalDate.class), LocalDate.of(2024, 2, 29));
            check("getters: getTimestamp", rs.getTimestamp("seen").toInstant(), Instant.parse("2024-05-01T12:30:15.250Z"));
            check("getters: timestamptz getString", rs.getString("seen"), "2024-05-01 12:30:15.25+00");
            check("getters: getObject(OffsetDateTime)", rs.getObject("seen", OffsetDateTime.class),
                  OffsetDateTime.parse("2024-05-01T12:30:15.250Z"));
            check("getters: jsonb getString", rs.getString("doc"), "{\"a\": [1, 2.50], \"b\": 1}");
            checkCall("getters: getObject classes", () -> eachColumn(md, i -> rs.getObject(i).getClass().getName()),
                      List.of("java.lang.Integer", "java.lang.Long", "java.math.BigDecimal", "java.lang.String",
                              "java.lang.Boolean", "java.sql.Date", "java.sql.Timestamp", "org.postgresql.util.PGobject"));
            checkCall("getters: jsonb getObject is a PGobject of type jsonb",
                      () -> ((org.postgresql.util.PGobject) rs.getObject("doc")).getType(), "jsonb");

            check("getters: row 2", rs.next(), true);
            check("getters: negative getLong", rs.getLong(2), -1L);
            check("getters: negative getBigDecimal", rs.getBigDecimal(3), new BigDecimal("-0.05"));
            check("getters: false getBoolean", List.of(rs.getBoolean(5), rs.wasNull()), List.of(false, false));
            check("getters: old date", rs.getDate(6).toString(), "1999-12-31");
            check("getters: OffsetDateTime written", rs.getTimestamp(7).toInstant(), Instant.parse("2024-01-01T04:59:59Z"));
            check("getters: OffsetDateTime getString", rs.getString(7), "2024-01-01 04:59:59+00");
            check("getters: ?::jsonb getString", rs.getString(8), "[\"x\", null, {\"k\": true}]");

            check("getters: row 3", rs.next(), true);
            check("getters: NULL getLong and wasNull", List.of(rs.getLong(2), rs.wasNull()), List.of(0L, true));
            check("getters: NULL getBigDecimal", rs.getBigDecimal(3), null);
            check("getters: NULL getBoolean and wasNull", List.of(rs.getBoolean(5), rs.wasNull()), List.of(false, true));
            check("getters: NULL getDate", rs.getDate(6), null);
            check("getters: NULL getTimestamp", rs.getTimestamp(7), null);
            check("getters: NULL jsonb getString", rs.getString(8), null);
            check("getters: no row 4", rs.next(), false);
        }
    }

    static String render(ResultSet rs) throws SQLException {
        return String.join("|", String.valueOf(rs.getObject(1, Integer.class)),
                           String.valueOf(rs.getObject(2, Long.class)),
                           String.valueOf(rs.getObject(3, BigDecimal.class)),
                           rs.getString(4),
                           String.valueOf(rs.getObject(5, Boolean.class)),
                           String.valueOf(rs.getObject(6, LocalDate.class)),
                           String.valueOf(rs.getObject(7, OffsetDateTime.class)),
                           rs.getString(8));
    }

    static void serverPrepared() throws Exception {
        String[] expected = {
            null,
            "1|9000000000|12.50|first|true|2024-02-29|2024-05-01T12:30:15.250Z|{\"a\": [1, 2.50], \"b\": 1}",
            "2|-1|-0.05|second|false|1999-12-31|2024-01-01T04:59:59Z|[\"x\", null, {\"k\": true}]",
            "3|null|null|third|null|null|null|null",
        };
        try (Connection c = connect();
             PreparedStatement ps = c.prepareStatement(SELECT_ITEMS + " WHERE id = ?")) {
            for (int run = 1; run <= 8; run++) {
                int id = (run - 1) % 3 + 1;
                ps.setInt(1, id);
                List<Object> got = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) got.add(render(rs));
                }
                check("server-prepared: run " + run + " (id " + id + ")", got, List.of(expected[id]));
            }
            check("server-prepared: isUseServerPrepare", ps.unwrap(PGStatement.class).isUseServerPrepare(), true);
            try (ResultSet rs = ps.executeQuery()) {
                ResultSetMetaData md = rs.getMetaData();
                check("server-prepared: metadata", List.of(md.getColumnTypeName(3), md.getPrecision(3), md.getScale(3)),
                      List.of("numeric", 10, 2));
            }
        }
        try (Connection c = connect();
             PreparedStatement ps = c.prepareStatement("SELECT count(*), sum(n), min(label) FROM seq WHERE n <= ?")) {
            for (int run = 1; run <= 7; run++) {
                ps.setLong(1, 10L * run);
                try (ResultSet rs = ps.executeQuery()) {
                    check("server-prepared aggregate: run " + run, rows(rs),
                          List.of((10 * run) + " " + (10 * run * (10 * run + 1) / 2) + " L1"));
                }
            }
        }
    }

    static void batches() throws Exception {
        try (Connection c = connect()) {
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO batched (id, label) VALUES (?, ?)")) {
                for (int i = 1; i <= 50; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "b" + i);
                    ps.addBatch();
                }
                List<Object> counts = Arrays.stream(ps.executeBatch()).boxed().collect(Collectors.toList());
                check("batch: prepared counts", counts, Collections.nCopies(50, 1));
            }
            check("batch: rows written", one(c, "SELECT count(*) FROM batched"), 50L);
            try (Statement st = c.createStatement()) {
                st.addBatch("INSERT INTO batched VALUES (100, 'hundred')");
                st.addBatch("UPDATE batched SET label = 'low' WHERE id < 10");
                st.addBatch("DELETE FROM batched WHERE id = 100");
                List<Object> counts = Arrays.stream(st.executeBatch()).boxed().collect(Collectors.toList());
                check("batch: Statement counts", counts, ints(1, 9, 1));
            }
            check("batch: Statement batch applied",
                  column(c, "SELECT label FROM batched WHERE id IN (9, 10, 100) ORDER BY id"), List.of("low", "b10"));
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO batched (id, label) VALUES (?, ?)")) {
                for (int id : new int[] {200, 1, 201}) {
                    ps.setInt(1, id);
                    ps.setString(2, "dup?");
                    ps.addBatch();
                }
                try {
                    ps.executeBatch();
                    fail("batch: duplicate key", "no error");
                } catch (BatchUpdateException e) {
                    check("batch: duplicate key sqlstate", e.getSQLState(), "23505");
                    SQLException next = e.getNextException();
                    check("batch: next exception sqlstate", next == null ? null : next.getSQLState(), "23505");
                }
            }
            check("batch: failed batch wrote nothing",
                  one(c, "SELECT count(*) FROM batched WHERE id >= 200"), 0L);
            usable("batch: usable after the failed batch", c);
        }
        try (Connection c = connect("reWriteBatchedInserts", "true");
             PreparedStatement ps = c.prepareStatement("INSERT INTO batched (id, label) VALUES (?, ?)")) {
            for (int i = 300; i < 320; i++) {
                ps.setInt(1, i);
                ps.setString(2, "r" + i);
                ps.addBatch();
            }
            List<Object> counts = Arrays.stream(ps.executeBatch()).boxed().collect(Collectors.toList());
            check("batch: rewritten counts", counts, Collections.nCopies(20, Statement.SUCCESS_NO_INFO));
            check("batch: rewritten rows",
                  column(c, "SELECT label FROM batched WHERE id >= 300 AND id < 320 ORDER BY id"),
                  IntStream.range(300, 320).mapToObj(i -> "r" + i).collect(Collectors.toList()));
        }
    }

    static final String LEDGER = "SELECT id, owner, amount FROM ledger ORDER BY id";

    static void insertLedger(Connection c, int id, String owner, String amount) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO ledger (id, owner, amount) VALUES (?, ?, ?)")) {
            ps.setInt(1, id);
            ps.setString(2, owner);
            ps.setBigDecimal(3, new BigDecimal(amount));
            ps.executeUpdate();
        }
    }

    static void transactions() throws Exception {
        try (Connection admin = connect(); Connection c = connect()) {
            c.setAutoCommit(false);
            check("tx: getAutoCommit", c.getAutoCommit(), false);
            check("tx: isolation", c.getTransactionIsolation(), Connection.TRANSACTION_READ_COMMITTED);
            insertLedger(c, 1, "ann", "10.00");
            insertLedger(c, 2, "ann", "2.50");
            insertLedger(c, 3, "bob", "7.25");
            check("tx: own writes visible", one(c, "SELECT count(*) FROM ledger"), 3L);
            check("tx: others do not see uncommitted", one(admin, "SELECT count(*) FROM ledger"), 0L);
            c.commit();
            List<Object> before = List.of("1 ann 10.00", "2 ann 2.50", "3 bob 7.25");
            check("tx: committed", rows(admin, LEDGER), before);

            insertLedger(c, 4, "cy", "100.00");
            try (Statement st = c.createStatement()) {
                check("tx: update count", st.executeUpdate("UPDATE ledger SET amount = 0 WHERE owner = 'ann'"), 2);
                check("tx: delete count", st.executeUpdate("DELETE FROM ledger WHERE id = 3"), 1);
            }
            check("tx: before rollback", rows(c, LEDGER), List.of("1 ann 0.00", "2 ann 0.00", "4 cy 100.00"));
            c.rollback();
            check("tx: rollback undid the writes", rows(admin, LEDGER), before);
            check("tx: rollback undid them for the session", rows(c, LEDGER), before);
            c.commit();

            try {
                insertLedger(c, 1, "dup", "0");
                fail("tx: duplicate key in a block", "no error");
            } catch (SQLException e) {
                check("tx: duplicate key in a block", e.getSQLState(), "23505");
            }
            expectSqlState("tx: block failed", c, "SELECT 1", "25P02");
            c.rollback();
            usable("tx: usable after rollback", c);

            insertLedger(c, 5, "dee", "1.00");
            c.setAutoCommit(true);
            check("tx: setAutoCommit(true) commits", rows(admin, LEDGER),
                  List.of("1 ann 10.00", "2 ann 2.50", "3 bob 7.25", "5 dee 1.00"));
        }
    }

    static void insertPair(Connection c, int a) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO pairs (a, b, v) VALUES (?, 'sp', ?)")) {
            ps.setInt(1, a);
            ps.setInt(2, a * 10);
            ps.executeUpdate();
        }
    }

    static final String SP_ROWS = "SELECT a FROM pairs WHERE b = 'sp' ORDER BY a";

    static void savepoints() throws Exception {
        try (Connection admin = connect(); Connection c = connect()) {
            c.setAutoCommit(false);
            insertPair(c, 10);
            Savepoint sp1 = c.setSavepoint("sp1");
            check("savepoint: name", sp1.getSavepointName(), "sp1");
            insertPair(c, 11);
            c.rollback(sp1);
            check("savepoint: rollback to it", column(c, SP_ROWS), ints(10));
            insertPair(c, 12);
            Savepoint sp2 = c.setSavepoint();
            insertPair(c, 13);
            c.releaseSavepoint(sp2);
            check("savepoint: release keeps the writes", column(c, SP_ROWS), ints(10, 12, 13));
            Savepoint sp3 = c.setSavepoint("before error");
            try {
                insertPair(c, 10);
                fail("savepoint: duplicate key", "no error");
            } catch (SQLException e) {
                check("savepoint: duplicate key", e.getSQLState(), "23505");
            }
            c.rollback(sp3);
            insertPair(c, 14);
            check("savepoint: others see nothing yet", column(admin, SP_ROWS), ints());
            Savepoint outer = c.setSavepoint("outer");
            insertPair(c, 20);
            c.setSavepoint("inner");
            insertPair(c, 21);
            c.rollback(outer);
            c.commit();
            check("savepoint: committed", column(admin, SP_ROWS), ints(10, 12, 13, 14));
        }
        try (Connection admin = connect(); Connection c = connect("autosave", "always")) {
            c.setAutoCommit(false);
            insertPair(c, 30);
            try {
                insertPair(c, 30);
                fail("autosave: duplicate key", "no error");
            } catch (SQLException e) {
                check("autosave: duplicate key", e.getSQLState(), "23505");
            }
            insertPair(c, 31);
            check("autosave: block goes on", column(c, "SELECT a FROM pairs WHERE a >= 30 ORDER BY a"), ints(30, 31));
            c.commit();
            check("autosave: committed", column(admin, "SELECT a FROM pairs WHERE a >= 30 ORDER BY a"), ints(30, 31));
        }
    }

    static void fetchSize() throws Exception {
        try (Connection c = connect()) {
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(7);
                try (ResultSet rs = st.executeQuery("SELECT n, label FROM seq ORDER BY n")) {
                    check("fetch size: getFetchSize", rs.getFetchSize(), 7);
                    List<Object> ns = new ArrayList<>();
                    boolean labels = true;
                    while (rs.next()) {
                        ns.add(rs.getInt(1));
                        labels &= ("L" + rs.getInt(1)).equals(rs.getString(2));
                    }
                    check("fetch size: every row in order", ns, range(1, 100));
                    check("fetch size: labels", labels, true);
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT n FROM seq WHERE n > ? ORDER BY n")) {
                ps.setFetchSize(10);
                ps.setInt(1, 50);
                try (ResultSet rs = ps.executeQuery()) {
                    check("fetch size: prepared with a parameter", column(rs, 1), range(51, 100));
                }
            }
            try (Statement up = c.createStatement(); Statement down = c.createStatement()) {
                up.setFetchSize(3);
                down.setFetchSize(3);
                try (ResultSet a = up.executeQuery("SELECT n FROM seq WHERE n <= 10 ORDER BY n");
                     ResultSet b = down.executeQuery("SELECT n FROM seq WHERE n <= 10 ORDER BY n DESC")) {
                    List<Object> pairs = new ArrayList<>();
                    while (a.next() && b.next()) pairs.add(a.getInt(1) + ":" + b.getInt(1));
                    check("fetch size: two portals in turn", pairs,
                          IntStream.rangeClosed(1, 10).mapToObj(i -> i + ":" + (11 - i)).collect(Collectors.toList()));
                }
            }
            try (Statement st = c.createStatement()) {
                st.setMaxRows(5);
                try (ResultSet rs = st.executeQuery("SELECT n FROM seq ORDER BY n")) {
                    check("max rows", column(rs, 1), range(1, 5));
                }
            }
            c.commit();
            c.setAutoCommit(true);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(7);
                try (ResultSet rs = st.executeQuery("SELECT n FROM seq ORDER BY n")) {
                    check("fetch size: autocommit on reads everything", column(rs, 1), range(1, 100));
                }
            }
        }
    }

    static void errors() throws Exception {
        try (Connection c = connect()) {
            try (Statement st = c.createStatement()) {
                st.execute("INSERT INTO items (id, name) VALUES (1, 'dup')");
                fail("error: duplicate key", "no error");
            } catch (PSQLException e) {
                check("error: duplicate key", e.getSQLState(), "23505");
                check("error: duplicate key detail", e.getServerErrorMessage().getDetail(), "Key (id)=(1) already exists.");
            }
            usable("error: usable after 23505", c);
            expectSqlState("error: unknown table", c, "SELECT * FROM no_such_table", "42P01");
            usable("error: usable after 42P01", c);
            expectSqlState("error: division by zero", c, "SELECT 1/0", "22012");
            usable("error: usable after 22012", c);
            try (Statement st = c.createStatement()) {
                st.execute("SELEC 1");
                fail("error: syntax", "no error");
            } catch (PSQLException e) {
                check("error: syntax", e.getSQLState(), "42601");
                check("error: syntax position", e.getServerErrorMessage().getPosition(), 1);
            }
            usable("error: usable after 42601", c);
            try (PreparedStatement ps = c.prepareStatement("SELECT 10 / ?")) {
                ps.setInt(1, 0);
                ps.executeQuery();
                fail("error: prepared division by zero", "no error");
            } catch (SQLException e) {
                check("error: prepared division by zero", e.getSQLState(), "22012");
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT * FROM no_such_table WHERE id = ?")) {
                ps.setInt(1, 1);
                ps.executeQuery();
                fail("error: prepared unknown table", "no error");
            } catch (SQLException e) {
                check("error: prepared unknown table", e.getSQLState(), "42P01");
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO items (id, name) VALUES (?, ?)")) {
                ps.setInt(1, 2);
                ps.setString(2, "dup");
                ps.executeUpdate();
                fail("error: prepared duplicate key", "no error");
            } catch (SQLException e) {
                check("error: prepared duplicate key", e.getSQLState(), "23505");
            }
            usable("error: usable after prepared errors", c);
            c.setAutoCommit(false);
            expectSqlState("error: in a block", c, "SELECT 1/0", "22012");
            expectSqlState("error: block failed", c, "SELECT 1", "25P02");
            c.rollback();
            usable("error: usable after the block's rollback", c);
            c.setAutoCommit(true);
        }
    }

    static void timeZones() throws Exception {
        TimeZone saved = TimeZone.getDefault();
        TimeZone.setDefault(TimeZone.getTimeZone("Asia/Kolkata"));
        try (Connection c = connect()) {
            check("tz: TimeZone sent at startup", one(c, "SHOW TimeZone"), "Asia/Kolkata");
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT seen FROM items WHERE id = 1")) {
                rs.next();
                check("tz: timestamptz getString", rs.getString(1), "2024-05-01 18:00:15.25+05:30");
                check("tz: timestamptz getTimestamp", rs.getTimestamp(1).toInstant(), Instant.parse("2024-05-01T12:30:15.250Z"));
                check("tz: timestamptz getObject(OffsetDateTime)", rs.getObject(1, OffsetDateTime.class),
                      OffsetDateTime.parse("2024-05-01T12:30:15.250Z"));
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO tz_t (id, d, ts, lts) VALUES (?, ?, ?, ?)")) {
                ps.setInt(1, 1);
                ps.setDate(2, Date.valueOf("2024-03-01"));
                ps.setTimestamp(3, Timestamp.valueOf("2024-06-01 10:00:00"));
                ps.setTimestamp(4, Timestamp.valueOf("2024-06-01 10:00:00"));
                check("tz: insert setDate/setTimestamp", ps.executeUpdate(), 1);
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT d, ts, lts FROM tz_t")) {
                rs.next();
                check("tz: date getDate", rs.getDate(1), Date.valueOf("2024-03-01"));
                check("tz: date getString", rs.getString(1), "2024-03-01");
                check("tz: timestamptz written", rs.getTimestamp(2).toInstant(), Instant.parse("2024-06-01T04:30:00Z"));
                check("tz: timestamptz written getString", rs.getString(2), "2024-06-01 10:00:00+05:30");
                check("tz: timestamp getString", rs.getString(3), "2024-06-01 10:00:00");
                check("tz: timestamp getTimestamp", rs.getTimestamp(3), Timestamp.valueOf("2024-06-01 10:00:00"));
            }
        } finally {
            TimeZone.setDefault(saved);
        }
        try (Connection c = connect()) {
            check("tz: read back from UTC", rows(c, "SELECT d, ts, lts FROM tz_t"),
                  List.of("2024-03-01 2024-06-01 04:30:00+00 2024-06-01 10:00:00"));
        }
    }

    static void views() throws Exception {
        try (Connection c = connect(); Statement st = c.createStatement()) {
            check("view: create",
                  st.execute("CREATE VIEW items_v AS SELECT id, name, price FROM items WHERE active IS NOT NULL"), false);
            try (ResultSet rs = st.executeQuery("SELECT * FROM items_v ORDER BY id")) {
                ResultSetMetaData md = rs.getMetaData();
                check("view: columns", List.of(md.getColumnName(1), md.getColumnName(2), md.getColumnName(3)),
                      List.of("id", "name", "price"));
                check("view: type names",
                      List.of(md.getColumnTypeName(1), md.getColumnTypeName(2), md.getColumnTypeName(3)),
                      List.of("int4", "text", "numeric"));
                check("view: rows", rows(rs), List.of("1 first 12.50", "2 second -0.05"));
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT name FROM items_v WHERE id = ?")) {
                ps.setInt(1, 2);
                try (ResultSet rs = ps.executeQuery()) {
                    check("view: prepared read", column(rs, 1), List.of("second"));
                }
            }
        }
    }

    static final String TOTALS = "SELECT owner, n, total FROM totals ORDER BY owner";

    static void materializedView() throws Exception {
        try (Connection admin = connect(); Connection c = connect()) {
            boolean postgres;
            try {
                execute(admin, "FLUSH");
                postgres = false;
            } catch (SQLException e) {
                if (!"42601".equals(e.getSQLState())) throw e;
                postgres = true; // PostgreSQL: no FLUSH; REFRESH MATERIALIZED VIEW instead
            }
            System.out.println("# materialized view made current with " + (postgres ? "REFRESH MATERIALIZED VIEW" : "FLUSH"));
            try (Statement st = admin.createStatement()) {
                check("mv: create", st.execute("CREATE MATERIALIZED VIEW totals AS "
                                                + "SELECT owner, count(*) AS n, sum(amount) AS total FROM ledger GROUP BY owner"),
                      false);
                try (ResultSet rs = st.executeQuery(TOTALS)) {
                    ResultSetMetaData md = rs.getMetaData();
                    check("mv: type names",
                          List.of(md.getColumnTypeName(1), md.getColumnTypeName(2), md.getColumnTypeName(3)),
                          List.of("text", "int8", "numeric"));
                    check("mv: after create", rows(rs), List.of("ann 2 12.50", "bob 1 7.25", "dee 1 1.00"));
                }
            }
            c.setAutoCommit(false);
            insertLedger(c, 7, "bob", "0.75");
            try (PreparedStatement ps = c.prepareStatement("UPDATE ledger SET owner = ? WHERE id = ?")) {
                ps.setString(1, "cy");
                ps.setInt(2, 2);
                ps.executeUpdate();
            }
            c.commit();
            insertLedger(c, 8, "ann", "1000.00");
            c.rollback();
            c.setAutoCommit(true);
            execute(admin, postgres ? "REFRESH MATERIALIZED VIEW totals" : "FLUSH");
            List<Object> expected = List.of("ann 1 10.00", "bob 2 8.00", "cy 1 2.50", "dee 1 1.00");
            check("mv: plain query", rows(admin,
                  "SELECT owner, count(*), sum(amount) FROM ledger GROUP BY owner ORDER BY owner"), expected);
            check("mv: current after commit and rollback", rows(admin, TOTALS), expected);
            try (PreparedStatement ps = c.prepareStatement("SELECT n, total FROM totals WHERE owner = ?")) {
                ps.setString(1, "bob");
                try (ResultSet rs = ps.executeQuery()) {
                    check("mv: prepared read", rows(rs), List.of("2 8.00"));
                }
            }
        }
    }

    static List<Object> tables(DatabaseMetaData md, String pattern, String... types) throws SQLException {
        List<Object> out = new ArrayList<>();
        try (ResultSet rs = md.getTables(null, schema, pattern, types)) {
            while (rs.next()) out.add(rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
        }
        return out;
    }

    /** Field `field` of getColumns(null, schema, table, "%"), getInt or getString. */
    static List<Object> columnsField(DatabaseMetaData md, String table, String field, boolean asInt) throws SQLException {
        List<Object> out = new ArrayList<>();
        try (ResultSet rs = md.getColumns(null, schema, table, "%")) {
            while (rs.next()) out.add(asInt ? (Object) rs.getInt(field) : rs.getString(field));
        }
        return out;
    }

    static List<Object> schemas(DatabaseMetaData md) throws SQLException {
        try (ResultSet rs = md.getSchemas()) {
            return column(rs, "TABLE_SCHEM");
        }
    }

    static void metadata() throws Exception {
        try (Connection c = connect()) {
            DatabaseMetaData md = c.getMetaData();
            String version = (String) one(c, "SHOW server_version");
            check("dbmd: product name", md.getDatabaseProductName(), "PostgreSQL");
            check("dbmd: product version", md.getDatabaseProductVersion(), version);
            check("dbmd: major version", md.getDatabaseMajorVersion(), Integer.parseInt(version.split("\\.")[0]));
            check("dbmd: driver name", md.getDriverName(), "PostgreSQL JDBC Driver");
            check("dbmd: user name", md.getUserName(), user);
            checkCall("dbmd: getSchemas lists ours", () -> schemas(md).contains(schema), true);
            checkCall("dbmd: getSchemas lists pg_catalog", () -> schemas(md).contains("pg_catalog"), true);
            checkCall("dbmd: getSchemas lists information_schema",
                      () -> schemas(md).contains("information_schema"), true);
            checkCall("dbmd: getSchemas(pattern)", () -> {
                try (ResultSet rs = md.getSchemas(null, schema)) {
                    return column(rs, "TABLE_SCHEM");
                }
            }, List.of(schema));
            checkCall("dbmd: getCatalogs lists ours", () -> {
                try (ResultSet rs = md.getCatalogs()) {
                    return column(rs, "TABLE_CAT").contains(dbname);
                }
            }, true);
            checkCall("dbmd: getTables TABLE", () -> tables(md, "%", "TABLE"),
                      List.of("batched TABLE", "items TABLE", "ledger TABLE", "pairs TABLE", "seq TABLE", "tz_t TABLE"));
            checkCall("dbmd: getTables VIEW", () -> tables(md, "%", "VIEW"), List.of("items_v VIEW"));
            checkCall("dbmd: getTables MATERIALIZED VIEW", () -> tables(md, "%", "MATERIALIZED VIEW"),
                      List.of("totals MATERIALIZED VIEW"));
            checkCall("dbmd: getTables by name", () -> tables(md, "item%", "TABLE", "VIEW", "MATERIALIZED VIEW"),
                      List.of("items TABLE", "items_v VIEW"));

            checkCall("dbmd: getColumns COLUMN_NAME", () -> columnsField(md, "items", "COLUMN_NAME", false),
                      List.of("id", "big", "price", "name", "active", "born", "seen", "doc"));
            checkCall("dbmd: getColumns TYPE_NAME", () -> columnsField(md, "items", "TYPE_NAME", false),
                      List.of("int4", "int8", "numeric", "text", "bool", "date", "timestamptz", "jsonb"));
            checkCall("dbmd: getColumns DATA_TYPE", () -> columnsField(md, "items", "DATA_TYPE", true),
                      ints(Types.INTEGER, Types.BIGINT, Types.NUMERIC, Types.VARCHAR, Types.BIT, Types.DATE,
                           Types.TIMESTAMP, Types.OTHER));
            checkCall("dbmd: getColumns COLUMN_SIZE", () -> columnsField(md, "items", "COLUMN_SIZE", true),
                      ints(10, 19, 10, 2147483647, 1, 13, 35, 2147483647));
            checkCall("dbmd: getColumns DECIMAL_DIGITS", () -> columnsField(md, "items", "DECIMAL_DIGITS", true),
                      ints(0, 0, 2, 0, 0, 0, 6, 0));
            checkCall("dbmd: getColumns NULLABLE", () -> columnsField(md, "items", "NULLABLE", true),
                      ints(DatabaseMetaData.columnNoNulls, DatabaseMetaData.columnNullable,
                           DatabaseMetaData.columnNullable, DatabaseMetaData.columnNoNulls,
                           DatabaseMetaData.columnNullable, DatabaseMetaData.columnNullable,
                           DatabaseMetaData.columnNullable, DatabaseMetaData.columnNullable));
            checkCall("dbmd: getColumns ORDINAL_POSITION", () -> columnsField(md, "items", "ORDINAL_POSITION", true),
                      range(1, 8));
            checkCall("dbmd: getColumns of a view", () -> columnsField(md, "items_v", "COLUMN_NAME", false),
                      List.of("id", "name", "price"));

            checkCall("dbmd: getPrimaryKeys", () -> {
                List<Object> keys = new ArrayList<>();
                try (ResultSet rs = md.getPrimaryKeys(null, schema, "items")) {
                    while (rs.next()) {
                        keys.add(rs.getString("TABLE_NAME") + " " + rs.getString("COLUMN_NAME") + " "
                                 + rs.getInt("KEY_SEQ") + " " + rs.getString("PK_NAME"));
                    }
                }
                return keys;
            }, List.of("items id 1 items_pkey"));
            checkCall("dbmd: getPrimaryKeys of a two-column key", () -> {
                List<Object> keys = new ArrayList<>();
                try (ResultSet rs = md.getPrimaryKeys(null, schema, "pairs")) {
                    while (rs.next()) keys.add(rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ"));
                }
                return keys;
            }, List.of("b 1", "a 2"));
            checkCall("dbmd: getImportedKeys", () -> {
                try (ResultSet rs = md.getImportedKeys(null, schema, "items")) {
                    return rs.next();
                }
            }, false);
        }
    }

    static void teardown() throws Exception {
        try (Connection c = connect(); Statement st = c.createStatement()) {
            st.execute("DROP MATERIALIZED VIEW totals");
            st.execute("DROP VIEW items_v");
            st.execute("DROP TABLE items, ledger, seq, batched, pairs, tz_t");
            check("teardown: tables dropped", tables(c.getMetaData(), "%", "TABLE", "VIEW", "MATERIALIZED VIEW"), List.of());
        }
    }

    // ---- main -------------------------------------------------------------

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: java -cp postgresql.jar JdbcSmoke.java HOST PORT [USER [DBNAME [SCHEMA]]]");
            System.exit(2);
        }
        TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
        String host = args[0], port = args[1];
        user = args.length > 2 ? args[2] : "test";
        dbname = args.length > 3 ? args[3] : "freshet";
        String scratch = args.length > 4 ? args[4] : null;
        String base = "jdbc:postgresql://" + host + ":" + port + "/" + dbname;
        props.setProperty("user", user);
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "60");
        props.setProperty("ApplicationName", "JdbcSmoke");
        url = base;
        if (scratch != null) {
            try (Connection c = connect()) {
                execute(c, "DROP SCHEMA IF EXISTS " + scratch + " CASCADE");
                execute(c, "CREATE SCHEMA " + scratch);
            }
            url = base + "?currentSchema=" + scratch;
            schema = scratch;
        } else {
            try (Connection c = connect()) {
                schema = (String) one(c, "SELECT current_schema()");
            }
        }
        Object[][] sections = {
            {"startup", (Section) JdbcSmoke::startup},
            {"ddl", (Section) JdbcSmoke::ddl},
            {"prepared_inserts", (Section) JdbcSmoke::preparedInserts},
            {"result_set", (Section) JdbcSmoke::resultSet},
            {"server_prepared", (Section) JdbcSmoke::serverPrepared},
            {"batches", (Section) JdbcSmoke::batches},
            {"transactions", (Section) JdbcSmoke::transactions},
            {"savepoints", (Section) JdbcSmoke::savepoints},
            {"fetch_size", (Section) JdbcSmoke::fetchSize},
            {"errors", (Section) JdbcSmoke::errors},
            {"time_zones", (Section) JdbcSmoke::timeZones},
            {"views", (Section) JdbcSmoke::views},
            {"materialized_view", (Section) JdbcSmoke::materializedView},
            {"metadata", (Section) JdbcSmoke::metadata},
            {"teardown", (Section) JdbcSmoke::teardown},
        };
        try {
            for (Object[] s : sections) {
                try {
                    ((Section) s[1]).run();
                } catch (Exception e) { // report and go on with the next section
                    fail("section " + s[0], "raised " + (e instanceof SQLException ? describe((SQLException) e) : e.toString()));
                    e.printStackTrace(System.out);
                }
            }
        } finally {
            if (scratch != null) {
                url = base;
                try (Connection c = connect()) {
                    execute(c, "DROP SCHEMA " + scratch + " CASCADE");
                }
            }
        }
        if (!FAILURES.isEmpty()) {
            System.out.println("FAILED " + FAILURES.size() + ": " + String.join(", ", FAILURES));
            System.exit(1);
        }
        System.out.println("ALL OK");
    }
}
