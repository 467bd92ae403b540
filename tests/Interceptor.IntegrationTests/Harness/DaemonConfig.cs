using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The daemon configuration a test runs with, written as the documented JSON keys (as an admin
/// would write them) rather than by serialising the daemon's option records, so a renamed key
/// in the daemon shows up here as a failure.
/// </summary>
public sealed record DaemonConfig
{
    /// <summary>What the tests expect in the trace header's host= part.</summary>
    public const string TestHeloName = "relay.test";

    public int ListenPort { get; init; } = 24;
    public IReadOnlyList<int> Ports { get; init; } = [25];
    public IReadOnlyList<string> ExemptUsers { get; init; } = ["root"];
    public string HeloName { get; init; } = TestHeloName;

    // Short timeouts by default: a daemon that waits where it should not must fail a test, not stall the run.
    public int ConnectTimeoutSeconds { get; init; } = 10;
    public int ReplyTimeoutSeconds { get; init; } = 20;
    public int DataReplyTimeoutSeconds { get; init; } = 30;

    /// <summary>The fake MX addresses are local to the namespace, so they must be permitted explicitly.</summary>
    public IReadOnlyList<string> PermittedLocalDestinations { get; init; } = FakeMx.DefaultListen;

    public long? MessageSizeBytes { get; init; }
    public int? RecipientsPerMessage { get; init; }
    public int? IdleTimeoutSeconds { get; init; }
    public int? SessionTimeoutSeconds { get; init; }

    /// <summary>
    /// Writes the design's State.Directory and Control.SocketPath keys, pointing into the test's
    /// directory so a daemon never uses the host's /var/lib or /run (and parallel tests never share a
    /// store or a control socket). On by default now that the daemon uses both.
    /// </summary>
    public bool IsolateStatePaths { get; init; } = true;

    /// <summary>
    /// Further documented keys, written on top of the typed ones above: the dotted key as the README spells it
    /// ("Limits.Users.smtpi-bob.MessagesPerHour", "Interception.BlockedPorts") and its JSON value. A value
    /// replaces what the typed properties wrote at that key; null writes JSON null.
    /// </summary>
    public IReadOnlyDictionary<string, JsonNode?> Settings { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>
    /// Not a configuration key: when set, the daemon process is started under `prlimit --nofile=N:N` (soft and hard
    /// descriptor limit N), as a unit's LimitNOFILE would, to test what happens at the limit.
    /// </summary>
    public int? DescriptorLimit { get; init; }

    public string ToJson(string stateDirectory)
    {
        var limits = new JsonObject();
        if (MessageSizeBytes is not null) { limits["MessageSizeBytes"] = MessageSizeBytes; }
        if (RecipientsPerMessage is not null) { limits["RecipientsPerMessage"] = RecipientsPerMessage; }
        var smtp = new JsonObject();
        if (IdleTimeoutSeconds is not null) { smtp["IdleTimeoutSeconds"] = IdleTimeoutSeconds; }
        if (SessionTimeoutSeconds is not null) { smtp["SessionTimeoutSeconds"] = SessionTimeoutSeconds; }

        var json = new JsonObject
        {
            ["Listen"] = new JsonObject { ["Port"] = ListenPort },
            ["Interception"] = new JsonObject
            {
                ["Ports"] = new JsonArray([.. Ports.Select(p => (JsonNode?)p)]),
                ["ExemptUsers"] = new JsonArray([.. ExemptUsers.Select(u => (JsonNode?)u)]),
            },
            ["Relay"] = new JsonObject
            {
                ["HeloName"] = HeloName,
                ["ConnectTimeoutSeconds"] = ConnectTimeoutSeconds,
                ["ReplyTimeoutSeconds"] = ReplyTimeoutSeconds,
                ["DataReplyTimeoutSeconds"] = DataReplyTimeoutSeconds,
                ["PermittedLocalDestinations"] = new JsonArray([.. PermittedLocalDestinations.Select(d => (JsonNode?)d)]),
            },
            ["Limits"] = new JsonObject { ["Default"] = limits },
            ["Smtp"] = smtp,
        };
        if (IsolateStatePaths)
        {
            json["State"] = new JsonObject { ["Directory"] = Path.Combine(stateDirectory, "state") };
            json["Control"] = new JsonObject { ["SocketPath"] = Path.Combine(stateDirectory, "control.sock") };
        }

        foreach (var (key, value) in Settings)
        {
            var parts = key.Split('.');
            var node = json;
            foreach (var part in parts[..^1])
            {
                if (node[part] is not JsonObject child)
                {
                    child = new JsonObject();
                    node[part] = child;
                }

                node = child;
            }

            node[parts[^1]] = value?.DeepClone();
        }

        return json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }
}
