-- A TAN is deleted when it is spent (the session counts the upload); spent TANs kept so far go.
DELETE FROM tans WHERE redeemed_at IS NOT NULL;
