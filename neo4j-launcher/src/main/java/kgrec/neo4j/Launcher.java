package kgrec.neo4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
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
 * cleanly on SIGTERM.
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

        DatabaseManagementService service = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                .setConfig(GraphDatabaseSettings.transaction_timeout, java.time.Duration.ofMinutes(10))
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("KGREC_NEO4J_STOPPING");
            service.shutdown();
            stopped.countDown();
        }));

        // Set the password explicitly through the system database (what `neo4j-admin dbms
        // set-initial-password` does for a packaged server). Idempotent across restarts.
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

        System.out.println("KGREC_NEO4J_READY bolt://" + host + ":" + port);
        System.out.flush();
        stopped.await();
    }

    private static Throwable rootCause(Throwable t) {
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t;
    }
}
