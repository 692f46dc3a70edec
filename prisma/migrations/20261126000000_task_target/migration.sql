-- An upload task names its file, so the tasks page can cancel it.
ALTER TABLE "Task" ADD COLUMN "target" TEXT;
