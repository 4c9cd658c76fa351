package kgrec.neo4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

/**
 * Runs a real Neo4j Community engine with its Bolt connector on a loopback address.
 *
 * <p>An embedded engine reads no neo4j.conf, so everything the server script would set is set here
 * explicitly: data folder, Bolt address, page cache, auth. The password comes from the environment
 * variable KGREC_NEO4J_PASSWORD (never from the command line, so it is not visible in `ps`), and is
 * never printed. The process prints "KGREC_NEO4J_READY" once Bolt answers and shuts the engine down
 * cleanly on SIGTERM. The password is set while Bolt is still off (a first engine start without the
 * connector), so Bolt never accepts a connection before it is in place.
 *
 * <p>Usage: Launcher DATA_DIR [HOST] [PORT] [PAGECACHE_MB]
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable t) {  // Neo4j's threads would keep a failed JVM alive: exit instead
            t.printStackTrace();
            System.out.println("KGREC_NEO4J_FAILED " + t);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
    }

    private static void run(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Launcher DATA_DIR [HOST] [PORT] [PAGECACHE_MB]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        String host = args.length > 1 ? args[1] : "127.0.0.1";
        int port = args.length > 2 ? Integer.parseInt(args[2]) : 7687;
        long pageCacheMb = args.length > 3 ? Long.parseLong(args[3]) : 256;
        String password = System.getenv("KGREC_NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            System.err.println("KGREC_NEO4J_PASSWORD must be set (at least 8 characters)");
            System.exit(2);
        }
        Files.createDirectories(home);

        // 1. The password is set with Bolt switched OFF, so no client can ever reach the engine
        //    while it still has the default credentials (neo4j/neo4j, "change required") or a
        //    previous password. Same as `neo4j-admin dbms set-initial-password` before a start.
        long t0 = System.nanoTime();
        DatabaseManagementService setup = builder(home, host, port, pageCacheMb, false).build();
        try {
            setPassword(setup, password);
        } finally {
            setup.shutdown();
        }
        System.out.printf("KGREC_NEO4J_AUTH_SET in %.1f s (Bolt still off)%n",
                          (System.nanoTime() - t0) / 1e9);

        // 2. The engine with Bolt on; the password is already in the system database.
        DatabaseManagementService service = builder(home, host, port, pageCacheMb, true).build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("KGREC_NEO4J_STOPPING");
            service.shutdown();
            stopped.countDown();
        }));

        System.out.printf("KGREC_NEO4J_READY bolt://%s:%d in %.1f s%n", host, port,
                          (System.nanoTime() - t0) / 1e9);
        System.out.flush();
        stopped.await();
    }

    private static DatabaseManagementServiceBuilder builder(Path home, String host, int port,
                                                            long pageCacheMb, boolean bolt) {
        return new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, bolt)
                .setConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                .setConfig(GraphDatabaseSettings.transaction_timeout, java.time.Duration.ofMinutes(10))
                // A stop waits this long for idle Bolt worker threads (5 s by default); the
                // connections are already closed then, so waiting longer only delays a restart
                // (the offline import's swap stops and starts the server).
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time,
                           java.time.Duration.ofMillis(500));
    }

    /** Set the password through the system database; idempotent across restarts. */
    private static void setPassword(DatabaseManagementService service, String password) {
        try {
            service.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PLAINTEXT PASSWORD $pw CHANGE NOT REQUIRED",
                    Map.of("pw", password));
        } catch (RuntimeException e) {
            // A restart with the same password: the engine refuses to "change" it. Fine.
            if (!String.valueOf(rootCause(e).getMessage()).contains("cannot be the same")) {
                throw e;
            }
        }
    }

    private static Throwable rootCause(Throwable t) {
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t;
    }
}
