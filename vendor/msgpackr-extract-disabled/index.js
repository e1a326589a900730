throw new Error("msgpackr-extract is disabled in plexus: msgpackr runs in pure JavaScript");
