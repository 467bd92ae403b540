using Interceptor.Daemon.Hold;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Control;

/// <summary>`held`'s answer: the held messages (newest last), of one user and since a time when asked.</summary>
public sealed record HeldData(DateTimeOffset? Since, string? User, uint? Uid, IReadOnlyList<HeldMessage> Messages);

/// <summary>`release` and `delete`: what was done to which messages, and one sentence for people.</summary>
public sealed record HoldChangeData(string Action, IReadOnlyList<string> Ids, string Message);

/// <summary>The admin verbs of hold-and-release: held, release, delete. The daemon must run with a hold store.</summary>
internal sealed class HoldAdmin(AdminContext context, ILogger logger, Func<string, (uint Uid, string Name)> resolve)
{
    public async Task<object> HandleAsync(ControlRequest request, PeerCredentials peer, CancellationToken cancellationToken)
    {
        var store = context.Holds ?? throw new ControlException(ControlErrors.Failed, "this daemon keeps no held messages");
        (uint Uid, string Name)? user = request.User is null ? null : resolve(request.User);
        return request.Verb switch
        {
            ControlVerbs.Held => Held(store, request, user),
            ControlVerbs.Release => await ReleaseAsync(store, request, user, peer),
            _ => await DeleteAsync(store, request, user, peer),
        };
    }

    private HeldData Held(HoldStore store, ControlRequest request, (uint Uid, string Name)? user)
    {
        DateTimeOffset? since = request.Since is null ? null : context.Time.GetUtcNow() - Durations.Parse(request.Since, "--since");
        var messages = store.List().Where(m => (user is null || m.Uid == user.Value.Uid) && (since is null || m.HeldAt >= since)).ToList();
        return new HeldData(since, user?.Name, user?.Uid, messages);
    }

    private async Task<HoldChangeData> ReleaseAsync(HoldStore store, ControlRequest request, (uint Uid, string Name)? user, PeerCredentials peer)
    {
        var releaser = context.Releaser ?? throw new ControlException(ControlErrors.Failed, "this daemon delivers no held messages");
        var targets = Targets(store, request, user, m => m.State is HoldState.Held or HoldState.Failed);
        var released = new List<string>();
        foreach (var id in targets)
        {
            try
            {
                if (await releaser.ReleaseAsync(id, peer.Uid, CancellationToken.None) is not null)
                {
                    released.Add(id);
                }
            }
            catch (InvalidOperationException e) when (request.Id is not null)
            {
                throw new ControlException(ControlErrors.BadRequest, e.Message);
            }
            catch (InvalidOperationException)
            {
                // Released or delivered meanwhile: nothing to do for this one.
            }
        }

        return new HoldChangeData("release", released, released.Count switch
        {
            0 => $"no held message of {user?.Name} to release",
            1 => $"released {released[0]}: delivering now (retried for Hold.ReleaseRetryHours; `held` shows its state)",
            _ => $"released {released.Count} messages of {user?.Name}: delivering now (`held` shows their state)",
        });
    }

    private async Task<HoldChangeData> DeleteAsync(HoldStore store, ControlRequest request, (uint Uid, string Name)? user, PeerCredentials peer)
    {
        var deleted = new List<string>();
        foreach (var message in Targets(store, request, user, _ => true).Select(store.Find).OfType<HeldMessage>())
        {
            if (await store.DeleteAsync(message.Id, CancellationToken.None))
            {
                logger.Deleted(message.Id, message.Uid, message.User, peer.Uid);
                deleted.Add(message.Id);
            }
        }

        return new HoldChangeData("delete", deleted, deleted.Count switch
        {
            0 => $"no held message of {user?.Name} to delete",
            1 => $"deleted {deleted[0]}",
            _ => $"deleted {deleted.Count} messages of {user?.Name}",
        });
    }

    /// <summary>The one message named (which must exist), or the user's messages that <paramref name="eligible"/> allows.</summary>
    private static IReadOnlyList<string> Targets(HoldStore store, ControlRequest request, (uint Uid, string Name)? user, Func<HeldMessage, bool> eligible)
    {
        if (request.Id is { } id)
        {
            return store.Find(id) is null
                ? throw new ControlException(ControlErrors.BadRequest, $"no held message {id} (`held` lists them)")
                : [id];
        }

        return [.. store.List().Where(m => m.Uid == user!.Value.Uid && eligible(m)).Select(m => m.Id)];
    }
}
